// The interactive parts of the pages common/pages.py writes (inlined into each page): sortable
// tables, the per-tag browser, the links to the review pages, the contact sheet's filter and the
// duplicate groups. The review viewer is common/review.js.
"use strict";
const DATA = JSON.parse(document.getElementById("page-data").textContent);
const app = document.getElementById("app");
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value; else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}
function picture(uri, name) {
  return uri ? el("img", {src: uri, alt: name, title: name, loading: "lazy"}) : el("div", {class: "missing", text: "unreadable"});
}
function sortable(table) {  // click a heading to sort by it; again to reverse
  const headings = table.querySelectorAll("th");
  headings.forEach((heading, column) => heading.addEventListener("click", () => {
    const up = !heading.classList.contains("sorted-up");
    headings.forEach(h => h.classList.remove("sorted-up", "sorted-down"));
    heading.classList.add(up ? "sorted-up" : "sorted-down");
    const body = table.tBodies[0], rows = Array.from(body.rows);
    const value = row => { const text = row.cells[column].dataset.value ?? row.cells[column].textContent;
                           const number = parseFloat(text); return text === "" ? NaN : isNaN(number) ? text : number; };
    rows.sort((a, b) => { const x = value(a), y = value(b);
      if (typeof x === "number" && typeof y === "number") {
        if (isNaN(x)) return 1; if (isNaN(y)) return -1; return up ? x - y : y - x; }
      return up ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x)); });
    rows.forEach(row => body.append(row));
  }));
}
function table(columns, rows, id) {
  const head = el("tr", {}, ...columns.map(([key, label]) => el("th", {"data-key": key, text: label})));
  const body = el("tbody");
  for (const row of rows) body.append(el("tr", {}, ...columns.map(([key]) => {
    const value = row[key];
    return el("td", {"data-value": value == null ? "" : String(value),
                     text: value == null ? "" : typeof value === "number" && !Number.isInteger(value) ? value.toFixed(3) : String(value)});
  })));
  const node = el("table", {id}, el("thead", {}, head), body);
  sortable(node);
  return node;
}
function prCurve(curve, tag) {
  const size = 240, pad = 30, ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", size + pad); svg.setAttribute("height", size + pad); svg.setAttribute("class", "chart");
  svg.setAttribute("id", "pr-curve");
  const text = (x, y, value, cls) => { const t = document.createElementNS(ns, "text"); t.setAttribute("x", x);
    t.setAttribute("y", y); t.setAttribute("class", cls || "tick"); t.textContent = value; svg.append(t); };
  text(pad, 14, "precision-recall: " + tag, "title");
  if (!curve) { text(pad, 40, "no validation image has this tag"); return svg; }
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", curve[0].map((r, i) => `${pad + r * (size - pad)},${size - curve[1][i] * (size - 2 * pad)}`).join(" "));
  line.setAttribute("fill", "none"); line.setAttribute("stroke", "#d62728"); line.setAttribute("stroke-width", "2");
  svg.append(line);
  text(pad, size + 12, "recall 0"); text(size - 30, size + 12, "1"); text(2, 2 * pad, "prec. 1");
  return svg;
}
function report() {
  if (!DATA.table.length) {  // a run without validation images: the curves are all there is
    app.append(el("p", {class: "muted", text: "No validation images (--val-fraction 0): no per-tag table or errors."}));
    return;
  }
  const tags = DATA.tags, byTag = Object.fromEntries(tags.map((tag, i) => [tag, i]));
  const worstBox = el("div", {id: "worst"}), curveBox = el("div", {class: "side"});
  const chooser = el("select", {id: "tag-choice", onchange: () => show(chooser.value)},
                     ...DATA.table.map(row => el("option", {value: row.tag, text: row.tag})));
  function strip(entries, label) {
    return el("div", {class: "side"}, el("h3", {text: label}), entries.length ?
      el("div", {class: "cards"}, ...entries.map(([row, p]) => el("div", {class: "card"},
        picture(DATA.thumbs[DATA.names[row]], DATA.names[row]), el("div", {class: "name", text: DATA.names[row]}),
        el("div", {text: "probability " + p.toFixed(3)})))) : el("p", {class: "muted", text: "none"}));
  }
  function show(tag) {
    chooser.value = tag;
    const index = byTag[tag], worst = DATA.worst[index] || {fp: [], fn: []};
    curveBox.replaceChildren(prCurve(DATA.pr[index], tag));
    worstBox.replaceChildren(strip(worst.fp, "false positives: " + tag + " predicted, not tagged"),
                             strip(worst.fn, "false negatives: tagged " + tag + ", not predicted"));
    document.querySelectorAll("#tag-table tbody tr").forEach(tr => tr.classList.toggle("selected", tr.cells[0].textContent === tag));
  }
  const columns = [["tag", "tag"], ["support", "images"], ["ap", "AP"], ["precision", "precision"], ["recall", "recall"],
                   ["f1", "F1"], ["threshold", "threshold"]];
  const tagTable = table(columns, DATA.table, "tag-table");
  tagTable.tBodies[0].addEventListener("click", event => { const row = event.target.closest("tr"); if (row) show(row.cells[0].textContent); });
  app.append(el("section", {id: "tags"}, el("h2", {text: "Per tag (validation set; click a heading to sort, a row to look at it)"}),
                el("div", {class: "scroll"}, tagTable)),
             el("section", {id: "errors"}, el("h2", {text: "The validation images each tag got most wrong"}),
                el("div", {class: "controls"}, el("label", {text: "tag "}, chooser)), curveBox, worstBox));
  if (DATA.table.length) show(DATA.table[0].tag);
}
function links() {  // the report's way to the review pages of this run and its folder
  if (!DATA.links || !DATA.links.length) return;
  app.append(el("section", {id: "review-links"}, el("h2", {text: "Review the labels"}),
    el("ul", {}, ...DATA.links.map(link => el("li", {}, el("a", {href: link.href, text: link.text}),
                                                   el("span", {class: "muted", text: " " + link.note}))))));
}
function sheet() {
  const images = DATA.images, page = 500;
  const allTags = Array.from(new Set(images.flatMap(image => Object.keys(image.tags)))).sort();
  const filter = el("input", {id: "tag-filter", list: "tag-names", placeholder: "filter by tag", size: "24"});
  const order = el("select", {id: "sort-order"}, el("option", {value: "folder", text: "folder order"}),
                   el("option", {value: "doubt", text: "most uncertain first"}));
  const count = el("span", {id: "shown-count", class: "muted"}), cards = el("div", {class: "cards", id: "cards"});
  const more = el("button", {id: "show-more", text: "show more"});
  let limit = page;
  function card(image) {
    const tags = Object.entries(image.tags).sort((a, b) => b[1] - a[1]);
    return el("div", {class: "card", "data-name": image.name}, picture(image.thumb, image.name), el("div", {class: "name", text: image.name}),
      el("div", {}, ...(tags.length ? tags.map(([tag, p]) => el("span", {class: "tagp", text: `${tag} ${p.toFixed(2)}`})) : [el("span", {class: "muted", text: "no tags"})])),
      image.doubt ? el("div", {class: "doubt", text: `closest call: ${image.doubt[0]} ${image.doubt[1].toFixed(2)}`}) : null);
  }
  function draw() {
    const wanted = filter.value.trim();
    let shown = images.filter(image => !wanted || wanted in image.tags);
    if (order.value === "doubt") shown = shown.slice().sort((a, b) => (a.doubt ? a.doubt[2] : 9) - (b.doubt ? b.doubt[2] : 9));
    cards.replaceChildren(...shown.slice(0, limit).map(card));
    count.textContent = `showing ${Math.min(limit, shown.length)} of ${shown.length} image(s)` + (wanted ? ` tagged ${wanted}` : "");
    more.hidden = shown.length <= limit;
  }
  filter.addEventListener("input", () => { limit = page; draw(); });
  order.addEventListener("change", () => { limit = page; draw(); });
  more.addEventListener("click", () => { limit += page; draw(); });
  app.append(el("datalist", {id: "tag-names"}, ...allTags.map(tag => el("option", {value: tag}))),
             el("div", {class: "controls"}, filter, el("label", {text: "sort "}, order), count), cards, more);
  draw();
}
function duplicates() {
  const onlyDiffering = el("input", {type: "checkbox", id: "only-differing"});
  const count = el("span", {id: "group-count", class: "muted"}), box = el("div", {id: "groups"});
  function group(entry, number) {
    const differ = new Set(entry.differ);
    const kind = entry.identical ? "identical files" : "near-duplicates";
    const heading = `group ${number}: ${entry.images.length + entry.more} ${kind}` + (entry.more ? ` (the first ${entry.images.length} shown)` : "") +
      (differ.size ? " · tags differ: " + entry.differ.join(", ") : " · same tags");
    return el("div", {class: "group" + (differ.size ? " disagrees" : ""), "data-group": String(number)},
      el("h3", {text: heading}),
      el("div", {class: "cards"}, ...entry.images.map((name, i) => el("div", {class: "card"},
        picture(DATA.thumbs[name], name), el("div", {class: "name", text: name}),
        el("div", {}, ...(entry.tags[i] == null ? [el("span", {class: "muted", text: "no tag file"})] :
          entry.tags[i].length ? entry.tags[i].map(tag => el("span", {class: differ.has(tag) ? "tagp differ" : "tagp", text: tag})) :
          [el("span", {class: "muted", text: "no tags"})]))))));
  }
  function draw() {
    const shown = DATA.groups.map((entry, i) => [entry, i + 1]).filter(([entry]) => !onlyDiffering.checked || entry.differ.length);
    box.replaceChildren(...shown.map(([entry, number]) => group(entry, number)));
    count.textContent = `showing ${shown.length} of ${DATA.found} group(s)` + (DATA.found > DATA.groups.length ? " (the CSV lists every group)" : "");
  }
  onlyDiffering.addEventListener("change", draw);
  app.append(el("div", {class: "controls"}, el("label", {}, onlyDiffering, " only groups whose tags differ"), count),
             el("p", {class: "muted", text: "Highlighted tags are on some pictures of a group and not on others: one of those tag files is probably wrong."}),
             box);
  draw();
}
if (DATA.kind === "report") { links(); report(); }
if (DATA.kind === "sheet") sheet();
if (DATA.kind === "review") review();
if (DATA.groups) duplicates();
