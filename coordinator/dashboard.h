/* dashboard.h - web/dashboard.html, built into the coordinator (cmake/embed.cmake), so
 * the binary serves its dashboard without files to install. */
#ifndef MH_DASHBOARD_H
#define MH_DASHBOARD_H

#include <stddef.h>

extern const unsigned char mh_dashboard_html[];
extern const size_t mh_dashboard_html_len;

#endif
