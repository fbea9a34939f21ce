// The review page's viewer (inlined into each page after page.js; common/review.py writes its data).
// One item at a time, large, driven by the keyboard; beside it a list of every item that draws only
// the rows in view, so 10,000 items move as fast as 10. Every decision is kept in localStorage under
// the page's own path and saved as the suspects CSV that `python prepare.py fix` applies.
"use strict";
function review() {
  const images = DATA.images, items = DATA.items, ROW = 46;
  const storeKey = "multitag-review:" + DATA.store_key;
  const idOf = item => [item.kind, item.tag, ...item.targets.map(i => images[i].name)].join("\t");
  const ids = items.map(idOf);
  const positionOfId = new Map(ids.map((id, position) => [id, position]));
  const orders = {likely: items.map((_, i) => i), folder: null};
  function folderOrder() {  // by the first picture's name, then the tag: computed once, when asked for
    return orders.folder || (orders.folder = orders.likely.slice().sort((a, b) =>
      images[items[a].targets[0]].name.localeCompare(images[items[b].targets[0]].name) || items[a].tag.localeCompare(items[b].tag)));
  }
  let state = {decided: {}, typed: [], log: [], at: null, order: "likely"};
  try { state = Object.assign(state, JSON.parse(localStorage.getItem(storeKey)) || {}); } catch (error) { /* a damaged entry: start afresh */ }
  let order = state.order === "folder" ? folderOrder() : orders.likely;
  let position = Math.max(0, order.indexOf(positionOfId.has(state.at) ? positionOfId.get(state.at) : 0));
  let storeFailed = false, storePending = false;
  function store() {
    storePending = false;
    try { localStorage.setItem(storeKey, JSON.stringify(state)); storeFailed = false; }
    catch (error) { storeFailed = true; }  // full or forbidden: say so, and keep working in memory
  }
  function keep() {  // stored right after the next item is drawn (with thousands decided, storing takes ~10 ms)
    state.at = items.length ? ids[order[position]] : null;
    if (!storePending) { storePending = true; setTimeout(store, 0); }
  }
  window.addEventListener("pagehide", () => { if (storePending) store(); });  // a reload or a closed tab

  const counter = el("span", {id: "review-counter"});
  const status = el("span", {id: "review-status", class: "muted"});
  const orderChoice = el("select", {id: "review-order", onchange: () => { setOrder(orderChoice.value); orderChoice.blur(); }},
    el("option", {value: "likely", text: "likeliest fixes first"}), el("option", {value: "folder", text: "folder order"}));
  const change = el("div", {id: "review-change", class: "change"});
  const pictures = el("div", {id: "review-pictures", class: "pictures"});
  const typing = el("input", {id: "review-type", list: "review-vocabulary", autocomplete: "off", size: "32",
                              placeholder: "t: type a tag, Enter adds it; -tag takes it off"});
  const spacer = el("div", {class: "spacer", style: `height:${items.length * ROW}px`});
  const list = el("div", {id: "review-list", class: "review-list"}, spacer);
  const full = el("div", {id: "review-full", class: "full", hidden: "", onclick: () => { full.hidden = true; }});
  const save = el("button", {id: "review-export", onclick: () => { exportDecisions(); save.blur(); }, text: "save decisions as CSV (e)"});
  const keys = "→ or j: next · ← or k: previous · a: accept · r: reject · t: type a tag · u: undo · f: full size · " +
               "o: order · e: save the CSV";
  app.append(el("datalist", {id: "review-vocabulary"}, ...DATA.vocabulary.map(tag => el("option", {value: tag}))),
    el("section", {id: "review", class: "review"},
      el("div", {class: "controls"}, counter, el("label", {text: "order "}, orderChoice), save, status),
      el("div", {class: "review-body"},
        el("div", {class: "review-main"}, change, pictures, el("div", {class: "controls"}, typing),
           el("p", {class: "keys muted", text: keys})), list), full));

  function current() { return items.length ? items[order[position]] : null; }
  function describe(item) {
    const verb = item.kind === "missing" ? "add" : "remove";
    const where = item.targets.length > 1 || item.shown ? ` on ${item.targets.length} picture(s)` : "";
    return `${verb} ${item.tag}${where}`;
  }
  function chip(text, cls) { return el("span", {class: "tagp " + (cls || ""), text}); }
  function typedFor(name) { return state.typed.filter(entry => entry.images.includes(name)); }
  function drawMain() {
    const item = current();
    if (!item) { change.replaceChildren(el("span", {class: "muted", text: "Nothing to review: every tag file agrees."})); return; }
    const decision = state.decided[ids[order[position]]];
    const details = [item.p != null ? `probability ${item.p.toFixed(3)}` : null, item.note || null].filter(Boolean).join(" · ");
    change.replaceChildren(...[el("span", {class: "verb " + item.kind, text: describe(item)}),
      details ? el("span", {class: "muted", text: " " + details}) : null,
      decision ? el("span", {class: "decision " + decision, id: "review-decision", text: decision === "yes" ? " accepted" : " rejected"}) : null]
      .filter(Boolean));
    const shown = item.shown || item.targets, targets = new Set(item.targets);
    pictures.className = "pictures" + (shown.length > 1 ? " several" : "");
    pictures.replaceChildren(...shown.map(i => {
      const image = images[i];
      const tags = image.tags.map(tag => chip(tag, tag === item.tag ? (item.kind === "extra" && targets.has(i) ? "doubted" : "subject") : ""));
      if (item.kind === "missing" && targets.has(i)) tags.push(chip("+ " + item.tag + "?", "proposed"));
      for (const entry of typedFor(image.name)) tags.push(chip((entry.kind === "missing" ? "+ " : "− ") + entry.tag, "typed"));
      return el("figure", {class: targets.has(i) ? "target" : ""},
        el("img", {src: image.src, alt: image.name, title: "f: full size", onclick: toggleFull}),
        el("figcaption", {}, el("div", {class: "name", text: image.name}), el("div", {}, ...tags)));
    }));
    if (!full.hidden) fillFull(item);  // the full-size view follows the item in view
    const next = items[order[position + 1]];
    if (next) new Image().src = images[(next.shown || next.targets)[0]].src;  // the next picture, ahead of time
  }
  function drawCounter() {
    const values = Object.values(state.decided), accepted = values.filter(value => value === "yes").length;
    counter.textContent = `item ${items.length ? position + 1 : 0} of ${items.length} · ${values.length} decided ` +
      `(${accepted} accepted, ${values.length - accepted} rejected)` + (state.typed.length ? ` · ${state.typed.length} typed` : "");
    if (storeFailed) status.textContent = "this browser would not keep the decisions: save the CSV before closing";
  }
  function drawList() {  // only the rows in view, plus a few on either side
    const first = Math.max(0, Math.floor(list.scrollTop / ROW) - 4);
    const last = Math.min(items.length, first + Math.ceil((list.clientHeight || 600) / ROW) + 8);
    const rows = [];
    for (let at = first; at < last; at++) {
      const item = items[order[at]], decision = state.decided[ids[order[at]]], image = images[item.targets[0] ?? item.shown[0]];
      rows.push(el("div", {class: "row" + (at === position ? " current" : "") + (decision ? " " + decision : ""),
                           style: `top:${at * ROW}px`, "data-position": String(at), onclick: () => goTo(at)},
        el("img", {src: image.src, alt: "", loading: "lazy"}),
        el("span", {class: "label", text: `${describe(item)} · ${image.name}`}),
        el("span", {class: "mark", text: decision === "yes" ? "✓" : decision === "no" ? "✗" : ""})));
    }
    list.replaceChildren(spacer, ...rows);
  }
  function goTo(target) {
    position = Math.min(Math.max(target, 0), Math.max(items.length - 1, 0));
    const top = position * ROW;
    if (top < list.scrollTop) list.scrollTop = top;
    else if (top + ROW > list.scrollTop + list.clientHeight) list.scrollTop = top + ROW - list.clientHeight;
    keep(); drawMain(); drawCounter(); drawList();
  }
  function decide(value) {
    if (!items.length) return;
    const id = ids[order[position]];
    state.log.push({what: "decide", id, before: state.decided[id] || null});
    state.decided[id] = value;
    goTo(position + 1 < items.length ? position + 1 : position);
  }
  function addTyped(text) {
    const item = current(), value = text.trim();
    if (!item || !value || value === "-") return;
    const removing = value.startsWith("-"), tag = removing ? value.slice(1).trim() : value;
    const names = (item.shown || item.targets).map(i => images[i].name);
    state.typed.push({images: names, tag, kind: removing ? "extra" : "missing"});
    state.log.push({what: "type", id: ids[order[position]]});
    keep(); drawMain(); drawCounter();
  }
  function undo() {
    const last = state.log.pop();
    if (!last) { status.textContent = "nothing to undo"; return; }
    if (last.what === "decide") { if (last.before) state.decided[last.id] = last.before; else delete state.decided[last.id]; }
    else state.typed.pop();
    status.textContent = "undone";
    const at = order.indexOf(positionOfId.get(last.id));
    goTo(at >= 0 ? at : position);
  }
  function setOrder(name) {
    const id = items.length ? ids[order[position]] : null;
    state.order = orderChoice.value = name;
    order = name === "folder" ? folderOrder() : orders.likely;
    goTo(id == null ? 0 : order.indexOf(positionOfId.get(id)));
  }
  function fillFull(item) {
    full.replaceChildren(...(item.shown || item.targets).map(i => el("img", {src: images[i].src, alt: images[i].name})));
  }
  function toggleFull() {
    const item = current();
    if (!item) return;
    fillFull(item);
    full.hidden = !full.hidden;
  }
  function csvText() {
    const quote = value => /[",\n\r]/.test(String(value)) ? '"' + String(value).replace(/"/g, '""') + '"' : String(value);
    const lines = ["image,tag,kind,given,probability,score,accept"];
    const tagsOf = new Map(images.map(image => [image.name, new Set(image.tags)]));
    const row = (name, tag, kind, p, score, accept) => {
      const given = tagsOf.get(name)?.has(tag) ? 1 : 0;
      lines.push([name, tag, kind, given, p ?? "", score ?? "", accept].map(quote).join(","));
    };
    items.forEach((item, i) => {
      const decision = state.decided[ids[i]];
      for (const target of item.targets) row(images[target].name, item.tag, item.kind, item.p, item.score,
                                              decision === "yes" ? "yes" : decision === "no" ? "no" : "");
    });
    for (const entry of state.typed) for (const name of entry.images) row(name, entry.tag, entry.kind, null, null, "yes");
    return lines.join("\r\n") + "\r\n";
  }
  function exportDecisions() {
    const link = el("a", {href: URL.createObjectURL(new Blob([csvText()], {type: "text/csv"})), download: DATA.export_name});
    document.body.append(link); link.click(); link.remove();
    status.textContent = `saved ${DATA.export_name}: apply it with python prepare.py fix FOLDER --suspects ${DATA.export_name}`;
  }
  const actions = {ArrowRight: () => goTo(position + 1), j: () => goTo(position + 1), " ": () => goTo(position + 1),
    ArrowLeft: () => goTo(position - 1), k: () => goTo(position - 1), Home: () => goTo(0), End: () => goTo(items.length - 1),
    a: () => decide("yes"), y: () => decide("yes"), Enter: () => decide("yes"), r: () => decide("no"), n: () => decide("no"),
    x: () => decide("no"), u: undo, Backspace: undo, z: undo, f: toggleFull, Escape: () => { full.hidden = true; },
    o: () => setOrder(state.order === "folder" ? "likely" : "folder"), e: exportDecisions,
    t: () => typing.focus(), "/": () => typing.focus()};
  document.addEventListener("keydown", event => {
    if (event.target === typing) {
      if (event.key === "Enter") { addTyped(typing.value); typing.value = ""; typing.blur(); event.preventDefault(); }
      else if (event.key === "Escape") { typing.value = ""; typing.blur(); }
      return;
    }
    if (event.altKey || event.metaKey || (event.ctrlKey && event.key !== "z")) return;
    if (event.target.tagName === "SELECT") return;  // its own keys choose an order
    const action = actions[event.key];
    if (action) { event.preventDefault(); action(); }
  });
  list.addEventListener("scroll", drawList, {passive: true});
  window.addEventListener("resize", drawList);
  orderChoice.value = state.order;
  goTo(position);
  window.review = {goTo, decide, undo, csvText, position: () => position, order: () => order.slice()};  // for scripts and tests
}
