// BitSage console: what only a browser can add to the server-rendered pages. Every page works
// without this script where it can; nothing here invents a number — live updates fetch the
// page again from the server and swap the regions marked [data-live-region].
'use strict';

(function () {
  function cookie(name) {
    var parts = document.cookie ? document.cookie.split(';') : [];
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].trim().split('=');
      if (kv[0] === name) return decodeURIComponent(kv.slice(1).join('='));
    }
    return '';
  }

  function toast(text) {
    var t = document.getElementById('toast');
    if (!t) return;
    t.textContent = text;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.textContent = ''; }, 6000);
  }

  // A change through the JSON API, with the session's CSRF token.
  function api(method, url, body) {
    var headers = { 'x-csrf-token': cookie('bitsage_csrf') };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(url, {
      method: method,
      headers: headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (res) {
      if (res.ok) return res;
      return res.json().catch(function () { return null; }).then(function (j) {
        var msg = j && j.error ? j.error.message : ('HTTP ' + res.status);
        throw new Error(msg);
      });
    });
  }

  // Re-render the live regions from a fresh copy of this page.
  var refreshing = false, again = false;
  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } })
      .then(function (res) {
        if (res.redirected || !res.ok) return null;
        return res.text();
      })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, 'text/html');
        document.querySelectorAll('[data-live-region]').forEach(function (old) {
          var fresh = old.id && doc.getElementById(old.id);
          if (!fresh) return;
          var hadFocus = old.contains(document.activeElement) && document.activeElement.id;
          old.replaceWith(fresh);
          if (hadFocus) {
            var f = document.getElementById(hadFocus);
            if (f) f.focus();
          }
        });
        document.dispatchEvent(new CustomEvent('console:refreshed'));
      })
      .catch(function () {})
      .finally(function () {
        refreshing = false;
        if (again) { again = false; setTimeout(refresh, 250); }
      });
  }

  function follow(topics) {
    if (!window.EventSource) return;
    var timer = null;
    var es = new EventSource('/console/live?topics=' + encodeURIComponent(topics));
    es.addEventListener('changed', function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 300);
    });
    // The server-set stream may end (restart, slow consumer): poll until it is back.
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) setTimeout(function () { follow(topics); }, 5000);
    };
  }

  // Actions: <form data-api="POST /api/nodes/{id}/drain" data-fields="reason,duration_secs">.
  function onAction(ev) {
    var form = ev.target.closest('form[data-api]');
    if (!form) return;
    ev.preventDefault();
    var spec = form.getAttribute('data-api').split(' ');
    var body = {};
    var fields = (form.getAttribute('data-fields') || '').split(',').filter(Boolean);
    fields.forEach(function (name) {
      var el = form.elements[name];
      if (!el || el.value === '') return;
      body[name] = el.type === 'number' ? Number(el.value) : el.value;
    });
    var confirmText = form.getAttribute('data-confirm');
    if (confirmText && !window.confirm(confirmText)) return;
    var button = form.querySelector('button[type=submit]');
    if (button) button.disabled = true;
    api(spec[0], spec[1], fields.length || spec[0] !== 'DELETE' ? body : undefined)
      .then(function (res) {
        toast(form.getAttribute('data-done') || 'Done.');
        var into = form.getAttribute('data-into');
        if (into) {
          return res.json().then(function (j) { fill(into, j); });
        }
        refresh();
      })
      .catch(function (e) { toast('Refused: ' + e.message); })
      .finally(function () { if (button) button.disabled = false; });
  }

  // Puts an API answer's fields into the elements that name them (data-from="token").
  function fill(id, json) {
    var box = document.getElementById(id);
    if (!box) return;
    box.querySelectorAll('[data-from]').forEach(function (el) {
      var v = el.getAttribute('data-from').split('.').reduce(function (o, k) { return o == null ? o : o[k]; }, json);
      if (v !== undefined && v !== null) el.textContent = String(v);
    });
    box.hidden = false;
    document.querySelectorAll('[data-template]').forEach(function (pre) {
      var t = pre.getAttribute('data-template');
      Object.keys(json).forEach(function (k) { t = t.split('{{' + k + '}}').join(String(json[k])); });
      pre.textContent = t;
    });
  }

  function copy(ev) {
    var b = ev.target.closest('[data-copy]');
    if (!b) return;
    var el = document.getElementById(b.getAttribute('data-copy'));
    if (!el || !navigator.clipboard) { toast('Copy is not available here; select the text.'); return; }
    navigator.clipboard.writeText(el.textContent).then(function () { toast('Copied.'); },
      function () { toast('Copy was refused by the browser.'); });
  }

  function download(ev) {
    var b = ev.target.closest('[data-download]');
    if (!b) return;
    var el = document.getElementById(b.getAttribute('data-download'));
    if (!el) return;
    var blob = new Blob([el.textContent], { type: b.getAttribute('data-type') || 'text/plain' });
    var a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = b.getAttribute('data-name') || 'download.txt';
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  }

  function hex(s) {
    var out = new Uint8Array(s.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
  }

  // A second opinion on a receipt's countersignature: the key is the one the deployment
  // publishes (GET /api/coordinator), never the receipt's own.
  function recheck() {
    var el = document.querySelector('[data-recheck]');
    if (!el) return;
    var out = document.getElementById('recheck');
    if (!window.isSecureContext || !window.crypto || !crypto.subtle) {
      out.textContent = 'Browser re-check: not available (needs https or localhost).';
      return;
    }
    fetch('/api/coordinator', { credentials: 'same-origin' })
      .then(function (r) { return r.json(); })
      .then(function (info) {
        return crypto.subtle.importKey('raw', hex(info.public_key), { name: 'Ed25519' }, false, ['verify'])
          .then(function (key) {
            return crypto.subtle.verify({ name: 'Ed25519' }, key,
              hex(el.getAttribute('data-signature')), hex(el.getAttribute('data-message')));
          })
          .then(function (ok) {
            out.textContent = ok
              ? 'Browser re-check: countersignature verified with key ' + info.key_id + '.'
              : 'Browser re-check: the countersignature does NOT verify with key ' + info.key_id + '.';
            out.className = ok ? 'ok small' : 'error small';
          });
      })
      .catch(function (e) { out.textContent = 'Browser re-check: not available (' + e.message + ').'; });
  }

  // The node drawer: focus its title when it opens, Escape closes it.
  function drawer() {
    var d = document.querySelector('aside.drawer');
    if (!d) return;
    var title = d.querySelector('h2');
    if (title && !d.contains(document.activeElement)) title.focus();
    document.addEventListener('keydown', function (ev) {
      if (ev.key !== 'Escape') return;
      var close = document.querySelector('aside.drawer [data-close]');
      if (close) location.href = close.href;
    });
  }

  function logout() {
    api('POST', '/api/auth/logout').finally(function () { location.href = '/login'; });
  }

  // Access tokens last minutes: renew them with the refresh cookie while the page is open.
  function keepSession() {
    if (!cookie('bitsage_csrf')) return;
    setInterval(function () { api('POST', '/api/auth/refresh').catch(function () {}); }, 10 * 60 * 1000);
  }

  // On the login page: a still-valid refresh cookie renews the session without a password.
  function tryResume() {
    var form = document.querySelector('form[data-login]');
    if (!form || !cookie('bitsage_csrf') || document.getElementById('login-error')) return;
    api('POST', '/api/auth/refresh').then(function () {
      location.href = form.elements.next.value || '/';
    }).catch(function () {});
  }

  document.addEventListener('submit', onAction);
  document.addEventListener('click', function (ev) {
    copy(ev);
    download(ev);
    if (ev.target.closest('[data-logout]')) logout();
  });
  document.addEventListener('DOMContentLoaded', function () {
    var topics = document.body.getAttribute('data-live');
    if (topics) follow(topics);
    recheck();
    drawer();
    keepSession();
    tryResume();
  });
})();
