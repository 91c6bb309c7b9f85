// The results sheet's live verdict: a preview while values are typed. It mirrors
// domain/decision_rules.py exactly (aggregate, judge, Limits.admits/meets, check_decimal):
// decimals are read as exact rationals (BigInt numerator / denominator), never floats.
// The verdict the server records when the form is saved is the one that counts.
"use strict";
(function () {
  var DECIMAL = /^[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?$/;
  var MAX_DIGITS = 30;
  var MAX_EXPONENT = 40;
  var SEVERITY = { pass: 0, inconclusive: 1, fail: 2 };

  // A decimal string as {n, d} (d > 0), or null when the server would refuse it.
  function parse(text) {
    if (!DECIMAL.test(text)) return null;
    var sign = text[0] === "-" ? -1n : 1n;
    var body = text.replace(/^[+-]/, "");
    var parts = body.split(/[eE]/);
    var mantissa = parts[0].split(".");
    var whole = mantissa[0];
    var fraction = mantissa.length > 1 ? mantissa[1] : "";
    var exponent = (parts.length > 1 ? parseInt(parts[1], 10) : 0) - fraction.length;
    var digits = (whole + fraction).replace(/^0+/, "") || "0";
    if (digits.length > MAX_DIGITS) return null;
    if (exponent < -MAX_EXPONENT || exponent + digits.length - 1 > MAX_EXPONENT) return null;
    var n = BigInt(digits) * sign;
    var d = 1n;
    if (exponent >= 0) n *= 10n ** BigInt(exponent);
    else d = 10n ** BigInt(-exponent);
    return { n: n, d: d };
  }

  function cmp(a, b) {
    var left = a.n * b.d;
    var right = b.n * a.d;
    return left < right ? -1 : left > right ? 1 : 0;
  }
  function add(a, b) { return { n: a.n * b.d + b.n * a.d, d: a.d * b.d }; }
  function sub(a, b) { return { n: a.n * b.d - b.n * a.d, d: a.d * b.d }; }

  function Limits(form) {
    this.lower = form.dataset.lower ? parse(form.dataset.lower) : null;
    this.lowerInclusive = form.dataset.lowerInclusive === "true";
    this.upper = form.dataset.upper ? parse(form.dataset.upper) : null;
    this.upperInclusive = form.dataset.upperInclusive === "true";
  }
  Limits.prototype.admits = function (x) {
    if (this.lower) {
      var low = cmp(x, this.lower);
      if (low < 0 || (low === 0 && !this.lowerInclusive)) return false;
    }
    if (this.upper) {
      var high = cmp(x, this.upper);
      if (high > 0 || (high === 0 && !this.upperInclusive)) return false;
    }
    return true;
  };
  // Whether some point of the closed interval [low, high] lies within the limits.
  Limits.prototype.meets = function (low, high) {
    var start = low, startClosed = true, end = high, endClosed = true;
    if (this.lower) {
      var s = cmp(this.lower, start);
      if (s > 0 || (s === 0 && !this.lowerInclusive)) {
        start = this.lower;
        startClosed = this.lowerInclusive;
      }
    }
    if (this.upper) {
      var e = cmp(this.upper, end);
      if (e < 0 || (e === 0 && !this.upperInclusive)) {
        end = this.upper;
        endClosed = this.upperInclusive;
      }
    }
    var c = cmp(start, end);
    return c < 0 || (c === 0 && startClosed && endClosed);
  };

  function judge(value, limits, u) {
    var low = sub(value, u), high = add(value, u);
    if (limits.admits(low) && limits.admits(high)) return "pass";
    if (!limits.meets(low, high)) return "fail";
    return "inconclusive";
  }

  // The verdict of the form's values, or "invalid" / "needs-u" (the server's 422s).
  function verdict(form) {
    var field = form.querySelector("[name=values]") || form.querySelector("[name=value]");
    var words = field.value.split(/[\s;]+/).filter(function (w) { return w !== ""; });
    if (!words.length) return "invalid";
    var values = words.map(parse);
    if (values.some(function (v) { return v === null; })) return "invalid";
    var aggregation = form.dataset.aggregation;
    if (aggregation === "single" && values.length !== 1) return "invalid";
    var minCount = form.dataset.minCount ? parseInt(form.dataset.minCount, 10) : null;
    if (aggregation === "count_within" && (minCount === null || minCount < 1 || minCount > values.length)) {
      return "invalid";
    }
    var u = { n: 0n, d: 1n };
    if (form.dataset.rule === "guarded") {
      var given = form.querySelector("[name=uncertainty]").value.trim();
      if (!given) return "needs-u";
      u = parse(given);
      if (u === null || u.n < 0n) return "invalid";
    }
    var limits = new Limits(form);
    var specimens = values.map(function (v) { return judge(v, limits, u); });
    var passing = specimens.filter(function (s) { return s === "pass"; }).length;
    var failing = specimens.filter(function (s) { return s === "fail"; }).length;
    if (aggregation === "single") return specimens[0];
    if (aggregation === "all") {
      return specimens.reduce(function (a, b) { return SEVERITY[b] > SEVERITY[a] ? b : a; });
    }
    if (aggregation === "mean") {
      var total = values.reduce(add);
      return judge({ n: total.n, d: total.d * BigInt(values.length) }, limits, u);
    }
    if (passing >= minCount) return "pass";
    if (values.length - failing < minCount) return "fail";
    return "inconclusive";
  }

  function show(form) {
    var output = form.querySelector("output.verdict");
    var result = verdict(form);
    var label = output.dataset["label" + result.replace(/(^|-)(\w)/g, function (_m, _d, c) {
      return c.toUpperCase();
    })];
    output.textContent = label || result;
    output.className = "verdict verdict-" + result;
    output.dataset.verdict = result;
  }

  document.querySelectorAll("form[data-verdict]").forEach(function (form) {
    form.addEventListener("input", function () { show(form); });
    var field = form.querySelector("[name=values]") || form.querySelector("[name=value]");
    if (field.value.trim()) show(form);
  });
})();
