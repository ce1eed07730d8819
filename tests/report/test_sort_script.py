"""The inline table-sorting script, run under Node against a minimal stand-in for the DOM."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from dlcompat.report.html import TEMPLATES

HARNESS = r"""
const vm = require("vm");
const fs = require("fs");
const [file, spec] = process.argv.slice(-2);
const data = JSON.parse(spec);
function element(attrs, text) {
  return {
    attrs: Object.assign({}, attrs), textContent: text, listeners: {},
    getAttribute(name) { return name in this.attrs ? this.attrs[name] : null; },
    hasAttribute(name) { return name in this.attrs; },
    setAttribute(name, value) { this.attrs[name] = String(value); },
    removeAttribute(name) { delete this.attrs[name]; },
    addEventListener(type, handler) { this.listeners[type] = handler; },
  };
}
const headers = data.headers.map(([label, numeric]) =>
  element(numeric ? {"data-type": "number"} : {}, label));
const body = {
  rows: data.rows.map(cells => ({cells: cells.map(([text, sort]) =>
    element(sort === null ? {} : {"data-sort": String(sort)}, text))})),
  appendChild(row) { this.rows.splice(this.rows.indexOf(row), 1); this.rows.push(row); },
};
const table = {tHead: {rows: [{cells: headers}]}, tBodies: [body]};
const document = {
  querySelectorAll(selector) { return selector === "table.sortable" ? [table] : []; },
  getElementById() { return null; },
};
vm.runInNewContext(fs.readFileSync(file, "utf8"), {document, window: {addEventListener() {}}});
const order = () => body.rows.map(row => row.cells[0].textContent);
const out = {};
headers[1].listeners.click(); out.ascending = order(); out.aria = headers[1].getAttribute("aria-sort");
headers[1].listeners.click(); out.descending = order();
headers[0].listeners.keydown({key: "Enter", preventDefault() {}}); out.byName = order();
out.cleared = headers[1].getAttribute("aria-sort");
console.log(JSON.stringify(out));
"""


def test_headers_sort_numbers_both_ways_with_missing_values_last() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    spec = {
        "headers": [["model", False], ["latency", True]],
        "rows": [
            [["item2", None], ["2 ms", 2]],
            [["item10", None], ["10 ms", 10]],
            [["failed", None], ["failed", None]],
            [["item1", None], ["1.5 ms", 1.5]],
            [["tiny", None], ["1e-06 ms", 1e-06]],
            [["\u2014", None], ["3 ms", 3]],
            [["(native)", ""], ["4 ms", 4]],
        ],
    }
    result = subprocess.run([node, "-e", HARNESS, "--", str(TEMPLATES / "report.js"), json.dumps(spec)],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["ascending"] == ["tiny", "item1", "item2", "\u2014", "(native)", "item10", "failed"]
    assert out["aria"] == "ascending"
    assert out["descending"] == ["item10", "(native)", "\u2014", "item2", "item1", "tiny", "failed"]
    # Text: data-sort wins over the text ("(native)" sorts as ""), the placeholder goes last.
    assert out["byName"] == ["(native)", "failed", "item1", "item2", "item10", "tiny", "\u2014"]
    assert out["cleared"] is None
