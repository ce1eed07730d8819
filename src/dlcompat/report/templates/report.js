(function () {
  "use strict";

  // Charts: each element with data-figure="ID" is drawn from the JSON figure in the element #ID.
  function drawCharts() {
    if (typeof window.Plotly === "undefined") {
      return [];
    }
    var drawn = [];
    document.querySelectorAll("[data-figure]").forEach(function (element) {
      var source = document.getElementById(element.getAttribute("data-figure"));
      if (!source) {
        return;
      }
      try {
        var figure = JSON.parse(source.textContent);
        window.Plotly.newPlot(element, figure.data, figure.layout, figure.config);
        drawn.push(element);
      } catch (error) {
        element.textContent = "This chart could not be drawn: " + error;
      }
    });
    return drawn;
  }

  // Sortable tables: click (or Enter/Space on) a header. A cell sorts by its data-sort, else by its
  // text; numeric columns by number. Cells without a value (no number, or the "—" placeholder) go last.
  var MISSING = "\u2014";

  function sortValue(cell, numeric) {
    if (!cell) {
      return null;
    }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : null;
    if (numeric) {
      var number = raw === null ? NaN : parseFloat(raw);
      return isFinite(number) ? number : null;
    }
    var text = raw === null ? cell.textContent.trim() : raw;
    return text === MISSING ? null : text.toLowerCase();
  }

  function compare(a, b) {
    if (a === null && b === null) { return 0; }
    if (a === null) { return 1; }
    if (b === null) { return -1; }
    if (typeof a === "number" && typeof b === "number") { return a - b; }
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }

  function makeSortable(table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (header, column) {
      function sort() {
        var descending = header.getAttribute("aria-sort") === "ascending";
        var numeric = header.getAttribute("data-type") === "number";
        Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
        header.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var body = table.tBodies[0];
        var rows = Array.prototype.map.call(body.rows, function (row, position) {
          return { row: row, key: sortValue(row.cells[column], numeric), position: position };
        });
        rows.sort(function (x, y) {
          if (x.key === null || y.key === null) {
            return compare(x.key, y.key) || x.position - y.position;
          }
          return (descending ? -1 : 1) * compare(x.key, y.key) || x.position - y.position;
        });
        rows.forEach(function (item) { body.appendChild(item.row); });
      }
      header.addEventListener("click", sort);
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sort();
        }
      });
    });
  }

  document.querySelectorAll("table.sortable").forEach(makeSortable);
  var charts = drawCharts();

  // Printing: unfold long error texts and fit the charts to the page width.
  var folded = [];
  window.addEventListener("beforeprint", function () {
    folded = Array.prototype.filter.call(document.querySelectorAll("details"), function (d) { return !d.open; });
    folded.forEach(function (d) { d.open = true; });
    charts.forEach(function (element) { window.Plotly.Plots.resize(element); });
  });
  window.addEventListener("afterprint", function () {
    folded.forEach(function (d) { d.open = false; });
    charts.forEach(function (element) { window.Plotly.Plots.resize(element); });
  });
}());
