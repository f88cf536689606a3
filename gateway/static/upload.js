// Several documents at once: choose or drag in files, give each its own type, and watch
// each go, with a progress bar per file. Each file is sent as its own POST of the same
// form the page has without JavaScript (answered in JSON when this script sends it), one
// after the other; when all are placed the page reloads and names them, with the
// reminder to remove them from this device. Without this script the plain form places
// one file. The page's words come from the form's data attributes.
(function () {
  "use strict";
  var form = document.getElementById("upload");
  if (!form || !window.FormData || !window.XMLHttpRequest || !window.Promise) {
    return;
  }
  var words = form.dataset;
  var input = form.querySelector("input[type=file]");
  var typeChoice = form.querySelector("select[name=document_type]");
  var zone = document.getElementById("dropzone");
  var queue = document.getElementById("queue");
  var rows = queue.querySelector("tbody");
  var button = form.querySelector("button[type=submit]");
  var items = [];
  var busy = false;

  input.multiple = true;

  function cell(row, child) {
    var td = document.createElement("td");
    if (typeof child === "string") {
      td.textContent = child;
    } else {
      td.appendChild(child);
    }
    row.appendChild(td);
    return td;
  }

  function add(files) {
    Array.prototype.forEach.call(files, function (file) {
      var row = document.createElement("tr");
      var choice = typeChoice.cloneNode(true);
      choice.removeAttribute("name");
      choice.removeAttribute("aria-invalid");
      choice.removeAttribute("aria-describedby");
      choice.value = typeChoice.value;
      choice.setAttribute("aria-label", words.typeOf + " " + file.name);
      var bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("aria-label", words.progressOf + " " + file.name);
      var status = document.createElement("span");
      status.className = "status";
      status.setAttribute("role", "status");
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary";
      remove.textContent = words.remove;
      remove.setAttribute("aria-label", words.remove + " " + file.name);

      cell(row, file.name);
      cell(row, choice);
      var progress = cell(row, bar);
      progress.appendChild(status);
      cell(row, remove);
      rows.appendChild(row);

      var item = { file: file, choice: choice, bar: bar, status: status, done: false };
      if (file.size === 0) {
        item.status.textContent = words.empty;
        item.status.className = "status failed";
        item.empty = true;
      }
      remove.addEventListener("click", function () {
        if (!busy) {
          items.splice(items.indexOf(item), 1);
          row.parentNode.removeChild(row);
          queue.hidden = items.length === 0;
        }
      });
      items.push(item);
    });
    queue.hidden = items.length === 0;
    input.value = ""; // the files are in the list now: the list is what is sent
    input.required = items.length === 0;
  }

  function send(item) {
    return new Promise(function (resolve) {
      var data = new FormData();
      data.append("csrf", form.elements.csrf.value);
      data.append("document_type", item.choice.value);
      data.append("removal_date", form.elements.removal_date.value);
      data.append("file", item.file, item.file.name);
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.setRequestHeader("X-Requested-With", "fetch");
      request.setRequestHeader("Accept", "application/json");
      request.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) {
          item.bar.value = Math.floor((event.loaded * 100) / event.total);
        }
      });
      request.addEventListener("load", function () {
        if (request.status !== 401) {
          document.dispatchEvent(new CustomEvent("overdracht:active")); // see session.js
        }
        var answer = null;
        try {
          answer = JSON.parse(request.responseText);
        } catch (ignored) {
          // not JSON (a proxy's error page): said as unreachable below
        }
        if (request.status === 201) {
          item.done = true;
          item.bar.value = 100;
          item.status.textContent = words.placed;
          item.status.className = "status placed";
        } else {
          item.status.className = "status failed";
          if (request.status === 401) {
            item.status.textContent = words.expired;
          } else if (answer && answer.error) {
            item.status.textContent = words.failed + ": " + answer.error.message;
          } else {
            item.status.textContent = words.unreachable;
          }
        }
        resolve();
      });
      request.addEventListener("error", function () {
        item.status.className = "status failed";
        item.status.textContent = words.unreachable;
        resolve();
      });
      item.status.textContent = words.sending;
      item.status.className = "status";
      request.send(data);
    });
  }

  input.addEventListener("change", function () {
    add(input.files);
  });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.remove("over");
    });
  });
  zone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) {
      add(event.dataTransfer.files);
    }
  });

  form.addEventListener("submit", function (event) {
    if (!items.length) {
      return; // nothing in the list: the plain form goes as it is
    }
    event.preventDefault();
    if (busy) {
      return;
    }
    busy = true;
    button.disabled = true;
    var waiting = items.filter(function (item) {
      return !item.done && !item.empty;
    });
    waiting
      .reduce(function (previous, item) {
        return previous.then(function () {
          return send(item);
        });
      }, Promise.resolve())
      .then(function () {
        busy = false;
        button.disabled = false;
        if (
          items.every(function (item) {
            return item.done;
          })
        ) {
          window.location.assign(words.clientPage);
        }
      });
  });
})();
