/*
 * upload.js: progress and drag and drop for the portal's upload forms (vanilla, no
 * dependency; loaded with <script src="/static/upload.js" defer>). The forms work without it.
 *
 * CONTRACT (shared by every portal upload form: dossier documents, test evidence...):
 *  - the script enhances every <form data-upload> that contains an <input type="file">,
 *    a <progress> (hidden until the upload starts) and an <output> for status text;
 *  - the form is an ordinary multipart form posting to its own action (no-JS path), whose
 *    first field is the hidden <input name="csrf"> (the server checks it before any byte of
 *    the file is stored); the file input is named "file" and comes last;
 *  - on submit the script posts FormData(form) to form.action with XMLHttpRequest, the
 *    csrf token also as the header X-CSRF-Token (checked before the body is read);
 *    progress.value follows XMLHttpRequest.upload.onprogress (0 to 100);
 *  - success: the server answers 303 to the page to show, which XHR follows; the script
 *    goes to that page (xhr.responseURL);
 *  - refusal: the server answers the page again (4xx/5xx, HTML) with the reason in the
 *    element named by the file input's aria-describedby; the script shows that text (or
 *    the page's first alert, or a generic message) in the <output> and stays on the page;
 *  - the form (or its element with class "dropzone") accepts a dropped file; the element
 *    gets the class "dragging" while a file is over it.
 * Texts come from the page: data-sending / data-failed attributes of the <output>, if any.
 */
(function () {
  "use strict";

  function reasonFrom(html, input) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var ids = (input.getAttribute("aria-describedby") || "").split(/\s+/);
    for (var i = 0; i < ids.length; i++) {
      var found = ids[i] && doc.getElementById(ids[i]);
      if (found && found.textContent.trim()) {
        return found.textContent.trim();
      }
    }
    var alert = doc.querySelector("main [role=alert]") || doc.querySelector("main p");
    return alert ? alert.textContent.trim() : "";
  }

  function enhance(form) {
    var input = form.querySelector("input[type=file]");
    var progress = form.querySelector("progress");
    var output = form.querySelector("output");
    var csrf = form.querySelector("input[name=csrf]");
    if (!input || !progress || !output) {
      return;
    }
    var zone = form.querySelector(".dropzone") || form;
    var busy = false;

    function say(text) {
      output.textContent = text;
    }

    function send() {
      if (busy || !input.files || input.files.length === 0) {
        return;
      }
      busy = true;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      if (csrf) {
        xhr.setRequestHeader("X-CSRF-Token", csrf.value);
      }
      progress.value = 0;
      progress.max = 100;
      progress.hidden = false;
      say(output.getAttribute("data-sending") || "");
      xhr.upload.onprogress = function (event) {
        if (event.lengthComputable && event.total > 0) {
          progress.value = Math.floor((event.loaded / event.total) * 100);
        }
      };
      xhr.onload = function () {
        busy = false;
        if (xhr.status >= 200 && xhr.status < 300) {
          progress.value = 100;
          window.location.assign(xhr.responseURL || form.action);
          return;
        }
        progress.hidden = true;
        say(reasonFrom(xhr.responseText, input) || output.getAttribute("data-failed") || "");
        input.setAttribute("aria-invalid", "true");
      };
      xhr.onerror = function () {
        busy = false;
        progress.hidden = true;
        say(output.getAttribute("data-failed") || "");
      };
      xhr.send(new FormData(form));
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send();
    });
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", function () {
      zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("dragging");
      if (event.dataTransfer && event.dataTransfer.files.length > 0) {
        input.files = event.dataTransfer.files;
        send();
      }
    });
  }

  var forms = document.querySelectorAll("form[data-upload]");
  for (var i = 0; i < forms.length; i++) {
    enhance(forms[i]);
  }
})();
