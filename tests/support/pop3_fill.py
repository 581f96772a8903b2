#!/usr/bin/env python3
# pop3_fill.py HOST PORT USER PASSWORD base|NAME - appends test messages to INBOX over IMAP for
# test_pop3.sh: "base" a Received-dated, a Date-only, a dot-stuffing, a date-less and a
# ~320 KB message; any other NAME one new message with that Message-ID.
import imaplib, ssl, sys, time
host, port, user, pw, what = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
M = imaplib.IMAP4(host, port)
M.login(user, pw)
def put(msg):
    typ, _ = M.append("INBOX", None, imaplib.Time2Internaldate(time.time()), msg.replace(b"\n", b"\r\n"))
    assert typ == "OK"
if what == "base":
    put(b"Received: from relay.example by mx.example; Wed, 02 Oct 2024 08:15:00 +0000\nDate: Tue, 01 Oct 2024 23:00:00 -0400\nFrom: a@example.com\nSubject: received date\nMessage-ID: <r1@example.com>\n\nbody one\n")
    put(b"Date: Sun, 5 May 2019 07:08:09 +0930\nFrom: b@example.com\nSubject: date only\nMessage-ID: <d1@example.com>\n\nbody two\n")
    put(b"From: c@example.com\nSubject: dots\nMessage-ID: <dots@example.com>\n\n.\n..\n.leading dot\n...three\nend\n")
    put(b"From: d@example.com\nSubject: no date\n\nno message-id, no date\n")
    big = b"".join(b"line %06d of a large message, padded to be long enough for the test\n" % i for i in range(4500))
    put(b"From: e@example.com\nSubject: large\nMessage-ID: <big@example.com>\nDate: 1 Jan 2020 00:00:00 +0000\n\n" + big + b".\n")
else:
    put(b"From: f@example.com\nSubject: new " + what.encode() + b"\nMessage-ID: <" + what.encode() + b"@example.com>\nDate: 3 Mar 2021 03:03:03 +0300\n\nnew message " + what.encode() + b"\n")
M.logout()
