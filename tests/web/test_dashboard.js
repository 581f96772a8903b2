// test_dashboard.js - runs web/dashboard.html's script against a minimal fake DOM and a
// fake API: the job table is filled, the header shows the metrics, a click shows a job's
// folders, failures grouped by code, and runs. Usage: node test_dashboard.js dashboard.html
"use strict";
const fs = require("fs");
const page = fs.readFileSync(process.argv[2], "utf8");
const js = page.slice(page.indexOf("<script>") + 8, page.indexOf("</script>"));
class Node_ { constructor(tag){ this.tag=tag; this.children=[]; this.attrs={}; this.style={}; this._text=""; this.value=""; }
  append(...k){ this.children.push(...k); } replaceChildren(...k){ this.children=k; }
  setAttribute(k,v){ this.attrs[k]=v; } set textContent(t){ this._text=t; } get textContent(){ return this._text + this.children.map(c=>c.textContent||c.data||"").join(""); } }
class Text_ { constructor(d){ this.data=d; } get textContent(){ return this.data; } }
const byId = {};
global.Node = Node_;
global.document = { hidden:false, createElement:(t)=>new Node_(t), createTextNode:(d)=>new Text_(d),
  getElementById:(id)=> byId[id] || (byId[id]=new Node_("div")) };
global.localStorage = { getItem:()=>null, setItem:()=>{} };
global.prompt = ()=>null; global.confirm = ()=>true;
global.setInterval = ()=>0;
const job = {job:"j-1",state:"partial",source:"imap://a@h",target:"imap://a@t",messages:{total:3,copied:1,skipped:1,failed:1},
  bytes:{total:30,copied:10,skipped:10,failed:10},error:null,check:{verdict:"ok"},verified:true,verify_error:null,autosync:null,
  sync:{flags:true,deletes:false,flags_updated:2,deleted:0},warning:"w",folders:[{source:"INBOX",target:"INBOX",target_before:0,target_after:2,messages:{total:3,copied:1,skipped:1,failed:1},bytes:{}}],
  failures:[{folder:"INBOX",uid:3,size:10,date:"",subject:"",code:"OVER_QUOTA",text:"t",fix:"f",detail:"d"}]};
global.fetch = async (path) => ({ status:200, ok:true, text: async () =>
  path==="/metrics" ? 'mailhaul_jobs{state="running"} 1\nmailhaul_copy_threads_live 2\n' :
  path.startsWith("/api/jobs?") ? JSON.stringify({jobs:[job]}) :
  path.endsWith("/history") ? JSON.stringify([{run:1,started:"a",ended:"b",state:"done",copied:1,skipped:0,failed:0,flags_updated:0,deleted:0}]) :
  JSON.stringify(job) });
eval(js);
setTimeout(async () => {
  const rows = byId["jobs"].children;
  if (rows.length !== 1) throw new Error("rows: " + rows.length);
  if (byId["m-running"].textContent !== "1" || byId["m-threads"].textContent !== "2") throw new Error("metrics: " + byId["m-running"].textContent);
  rows[0].onclick(); await new Promise(r=>setTimeout(r,50));
  const d = byId["detail"];
  if (d.style.display !== "block") throw new Error("detail not shown");
  for (const want of ["OVER_QUOTA", "INBOX", "flag changes", "Runs"])
    if (!d.textContent.includes(want)) throw new Error("detail lacks " + want + ": " + d.textContent);
  console.log("dashboard ok");
}, 50);
