/* mloop console: theme toggle, confirmations, Plotly charts. No inline scripts anywhere:
   pages mark elements with data-* attributes and this file wires them. */
(function () {
  "use strict";
  var KEY = "mloop-theme";

  function applyTheme(theme) {
    if (theme === "light" || theme === "dark") {
      document.documentElement.setAttribute("data-theme", theme);
    } else {
      document.documentElement.removeAttribute("data-theme");
    }
  }
  function currentTheme() {
    var set = document.documentElement.getAttribute("data-theme");
    if (set) { return set; }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  try { applyTheme(window.localStorage.getItem(KEY)); } catch (e) { /* storage blocked */ }

  function wireTheme() {
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.addEventListener("click", function () {
        var next = currentTheme() === "dark" ? "light" : "dark";
        applyTheme(next);
        try { window.localStorage.setItem(KEY, next); } catch (e) { /* storage blocked */ }
        drawCharts();
      });
    });
  }

  /* <form data-confirm="Roll back churn?"> or <button data-confirm="..."> asks first. */
  function wireConfirm() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      var submitter = event.submitter;
      var text = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
      if (text && !window.confirm(text)) { event.preventDefault(); }
    });
  }

  function chartColors() {
    var style = getComputedStyle(document.documentElement);
    return { text: style.getPropertyValue("--text").trim(), grid: style.getPropertyValue("--border").trim() };
  }

  /* <div data-chart="ID"> + <script type="application/json" id="ID">{data, layout}</script> */
  function drawCharts() {
    var holders = document.querySelectorAll("[data-chart]");
    if (!holders.length || !window.Plotly) { return; }
    var colors = chartColors();
    holders.forEach(function (holder) {
      var source = document.getElementById(holder.getAttribute("data-chart"));
      if (!source) { return; }
      var figure = JSON.parse(source.textContent);
      var layout = Object.assign({
        autosize: true, margin: { l: 50, r: 20, t: 40, b: 50 },
        paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)"
      }, figure.layout || {});
      layout.font = Object.assign({ color: colors.text }, layout.font || {});
      layout.xaxis = Object.assign({ gridcolor: colors.grid }, layout.xaxis || {});
      layout.yaxis = Object.assign({ gridcolor: colors.grid }, layout.yaxis || {});
      window.Plotly.react(holder, figure.data || [], layout, { responsive: true, displaylogo: false });
    });
  }

  function loadCharts() {
    if (!document.querySelector("[data-chart]")) { return; }
    var script = document.createElement("script");
    script.src = "/ui/static/plotly.min.js";
    script.onload = drawCharts;
    document.head.appendChild(script);
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireTheme();
    wireConfirm();
    loadCharts();
  });
})();
