(function () {
  "use strict";

  // Charts: each element with data-figure="ID" is drawn from the JSON figure in the element #ID, once,
  // when it can be seen (a chart in a closed <details> is drawn when its fold first opens).
  function drawChart(element) {
    if (typeof window.Plotly === "undefined" || element.classList.contains("js-plotly-plot")) {
      return;
    }
    var source = document.getElementById(element.getAttribute("data-figure"));
    if (!source) {
      return;
    }
    try {
      var figure = JSON.parse(source.textContent);
      window.Plotly.newPlot(element, figure.data, figure.layout, figure.config);
    } catch (error) {
      element.textContent = "This chart could not be drawn: " + error;
    }
  }

  function isFolded(element) {
    for (var parent = element.parentElement; parent; parent = parent.parentElement) {
      if (parent.tagName === "DETAILS" && !parent.open) {
        return true;
      }
    }
    return false;
  }

  function drawVisibleCharts(root) {
    (root || document).querySelectorAll("[data-figure]").forEach(function (element) {
      if (!isFolded(element)) {
        drawChart(element);
      }
    });
  }

  function drawnCharts() {
    return document.querySelectorAll(".js-plotly-plot");
  }

  // plotly.js travels gzipped and base64-encoded (#plotly-js); the browser unpacks it into a script.
  function loadPlotly() {
    var packed = document.getElementById("plotly-js");
    if (!packed || typeof window.DecompressionStream === "undefined") {
      return Promise.resolve(false);
    }
    var binary = atob(packed.textContent.trim());
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) {
      bytes[i] = binary.charCodeAt(i);
    }
    var stream = new Blob([bytes]).stream().pipeThrough(new window.DecompressionStream("gzip"));
    return new Response(stream).text().then(function (code) {
      var script = document.createElement("script");
      script.textContent = code;
      document.head.appendChild(script);
      return typeof window.Plotly !== "undefined";
    });
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
      if (header.hasAttribute("data-nosort")) {
        return;
      }
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

  // A fold draws its charts when it opens, and fits the ones it already drew to the page width.
  document.querySelectorAll("details").forEach(function (details) {
    details.addEventListener("toggle", function () {
      if (details.open) {
        drawVisibleCharts(details);
        details.querySelectorAll(".js-plotly-plot").forEach(function (element) {
          window.Plotly.Plots.resize(element);
        });
      }
    });
  });
  function sayChartsCannotBeDrawn(reason) {
    document.querySelectorAll("[data-figure]").forEach(function (element) {
      element.textContent = "The charts could not be drawn (" + reason + "); every number they show is also in " +
        "the tables.";
    });
  }
  loadPlotly().then(function (loaded) {
    if (loaded) {
      drawVisibleCharts();
    } else if (document.getElementById("plotly-js")) {
      sayChartsCannotBeDrawn("this browser cannot unpack plotly.js: it lacks DecompressionStream");
    }
  }, function (error) { sayChartsCannotBeDrawn(String(error)); });

  // Printing: unfold everything (charts drawn, long error texts open) and fit the charts to the page width.
  var folded = [];
  window.addEventListener("beforeprint", function () {
    folded = Array.prototype.filter.call(document.querySelectorAll("details"), function (d) { return !d.open; });
    folded.forEach(function (d) { d.open = true; });
    drawVisibleCharts();
    drawnCharts().forEach(function (element) { window.Plotly.Plots.resize(element); });
  });
  window.addEventListener("afterprint", function () {
    folded.forEach(function (d) { d.open = false; });
    drawnCharts().forEach(function (element) { window.Plotly.Plots.resize(element); });
  });
}());
