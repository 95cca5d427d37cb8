// The page: cluster → namespace → pod → container pickers, terminal tabs, the status line,
// search, and the URL that names the open terminal.

import * as api from './api.js';
import * as route from './route.js';
import { RestrictedSession } from './restricted-session.js';
import { SessionsView, targetOf } from './sessions-view.js';
import { ShellSession } from './shell-session.js';
import { createTerminal } from './terminal.js';
import { WatchSession } from './watch-session.js';
import { LogsView } from './logs-view.js';
import * as files from './files.js';
import { ensureDebugContainer, reusable } from './debug.js';

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ui = {
  form: /** @type {HTMLFormElement} */ ($('picker')),
  cluster: /** @type {HTMLSelectElement} */ ($('cluster')),
  namespace: /** @type {HTMLInputElement} */ ($('namespace')),
  namespaces: $('namespaces'),
  pod: /** @type {HTMLSelectElement} */ ($('pod')),
  podName: /** @type {HTMLInputElement} */ ($('pod-name')),
  container: /** @type {HTMLSelectElement} */ ($('container')),
  containerField: $('container-field'),
  notice: $('notice'),
  user: $('user'),
  tabs: $('tabs'),
  panes: $('panes'),
  empty: $('empty'),
  status: $('status'),
  restart: /** @type {HTMLButtonElement} */ ($('restart')),
  search: $('search'),
  searchInput: /** @type {HTMLInputElement} */ ($('search-input')),
  searchCount: $('search-count'),
  keys: $('keys'),
  open: /** @type {HTMLButtonElement} */ ($('open')),
  sessionsToggle: /** @type {HTMLButtonElement} */ ($('sessions-toggle')),
  sessions: $('sessions'),
  logsToggle: /** @type {HTMLButtonElement} */ ($('logs-toggle')),
  logs: $('logs'),
  filesToggle: /** @type {HTMLButtonElement} */ ($('files-toggle')),
  filesDialog: /** @type {HTMLDialogElement} */ ($('files-dialog')),
  debugToggle: /** @type {HTMLButtonElement} */ ($('debug-toggle')),
  debugDialog: /** @type {HTMLDialogElement} */ ($('debug-dialog')),
};

/** How long a note such as "copied" stays in the status line, in milliseconds. */
const FLASH_MS = 1500;

/**
 * @typedef {{target: route.Target, view: import('./terminal.js').View,
 *   session: ShellSession | RestrictedSession | WatchSession | null, tab: HTMLElement,
 *   pane: HTMLElement, status: any, closed: boolean, watching: boolean}} Tab
 */
/** @type {Tab[]} */
const tabs = [];
/** @type {Tab | null} */
let active = null;
/** pods of the namespace shown in the picker, by name */
let podsByName = new Map();
/**
 * The latest request of each picker list: an answer to an older one is dropped, so a slow
 * list can never replace the one the user asked for since (every list, every picker).
 */
const latest = { clusters: 0, namespaces: 0, pods: 0, pod: 0 };
const ask = (list) => {
  latest[list] += 1;
  const mine = latest[list];
  return () => mine === latest[list];
};

function notice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
}

function option(value, label = value) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label;
  return o;
}

// ---- pickers ---------------------------------------------------------------------------

async function loadClusters() {
  const current = ask('clusters');
  const names = await api.clusters();
  if (!current()) return names;
  ui.cluster.replaceChildren(...names.map((n) => option(n)));
  return names;
}

async function loadNamespaces(wanted) {
  const current = ask('namespaces');
  // What the field shows now: a different value when the answer comes was typed meanwhile.
  const shown = ui.namespace.value;
  ui.namespaces.replaceChildren();
  ui.namespace.placeholder = 'loading…';
  let names = [];
  try {
    names = await api.namespaces(ui.cluster.value);
    if (!current()) return;
    ui.namespace.placeholder = 'type or pick';
    ui.namespaces.replaceChildren(...names.map((n) => option(n)));
  } catch (e) {
    if (!current()) return;
    ui.namespace.placeholder = 'type or pick';
    notice(`Cannot list namespaces (${e.message}); type the namespace's name.`);
  }
  // Typed while the list came (or failed to): the user's, even where the list lacks it.
  const typed = ui.namespace.value !== shown;
  if (wanted) ui.namespace.value = wanted;
  else if (!typed && (!ui.namespace.value || !names.includes(ui.namespace.value))) {
    ui.namespace.value = names.includes('default') ? 'default' : (names[0] ?? '');
  }
}

/** The cluster and namespace whose pods the picker shows, or is asking for. */
let podsOf = '';
const pickedNamespace = () => JSON.stringify([ui.cluster.value, ui.namespace.value.trim()]);

async function loadPods(wanted) {
  const current = ask('pods');
  podsOf = pickedNamespace();
  // Until the list comes: a placeholder, and nothing to open.
  ui.pod.replaceChildren(option('', 'loading…'));
  podsByName = new Map();
  const ns = ui.namespace.value.trim();
  typePod(false);
  if (!ns) {
    ui.pod.replaceChildren();
    return fillContainers();
  }
  whoami(ui.cluster.value, ns);
  ui.open.disabled = true;
  try {
    const list = await api.pods(ui.cluster.value, ns);
    if (!current()) return;
    ui.pod.replaceChildren();
    podsByName = new Map(list.map((p) => [p.metadata.name, p]));
    ui.pod.replaceChildren(
      ...list.map((p) => option(p.metadata.name, `${p.metadata.name} — ${api.phaseOf(p)}`)),
    );
    // The first pod with a shell, not one that would show no prompt.
    const first = list.find(api.hasShell);
    if (first) ui.pod.value = first.metadata.name;
    if (list.length === 0) notice(`No pods in ${ns}.`);
  } catch (e) {
    if (!current()) return;
    ui.pod.replaceChildren();
    // A pod the user cannot list may still be one they can exec into: let them type it.
    notice(`Cannot list pods in ${ns} (${e.message}); type the pod's name.`);
    typePod(true);
    if (wanted) ui.podName.value = wanted;
    if (wanted) await lookUpPod(wanted);
    return fillContainers();
  }
  if (wanted && !podsByName.has(wanted)) ui.pod.append(option(wanted));
  if (wanted) ui.pod.value = wanted;
  fillContainers();
}

/**
 * The namespaces, then the default namespace's pods, unless the user asked for pods of a
 * namespace while the namespaces came: that newer request is theirs, and a default list must
 * not replace what they picked from it.
 */
async function namespacesThenPods() {
  const before = latest.pods;
  await loadNamespaces();
  if (latest.pods === before) await loadPods();
}

/** Shows a text field for the pod's name instead of the list (when pods cannot be listed). */
function typePod(typed) {
  ui.pod.hidden = typed;
  ui.podName.hidden = !typed;
  if (!typed) ui.podName.value = '';
}

/** The pod the pickers name, picked or typed. */
function podPicked() {
  return ui.pod.hidden ? ui.podName.value.trim() : ui.pod.value;
}

/** Reads a typed pod (getting one may be allowed where listing is not) for its containers. */
async function lookUpPod(name) {
  if (!name || podsByName.has(name)) return;
  const current = ask('pod');
  try {
    const p = await api.pod(ui.cluster.value, ui.namespace.value.trim(), name);
    if (current()) podsByName.set(name, p);
  } catch {
    /* the exec will say what is wrong */
  }
}

function fillContainers(wanted) {
  ui.open.disabled = false;
  const p = podsByName.get(podPicked());
  const { names, preferred, kinds } = api.containersOf(p);
  ui.container.replaceChildren(...names.map((n) => option(n, api.containerLabel(n, kinds))));
  // A pod without a shell: Debug is the way in.
  ui.debugToggle.classList.toggle('suggested', Boolean(p) && !api.hasShell(p));
  ui.container.value = wanted && names.includes(wanted) ? wanted : (preferred ?? '');
  // A pod with one container needs no second pick.
  ui.containerField.hidden = names.length <= 1;
}

/** The target the pickers name, or null when they name no pod. */
function picked() {
  const cluster = ui.cluster.value;
  const namespace = ui.namespace.value.trim();
  const pod = podPicked();
  if (!cluster || !namespace || !pod) return null;
  const { names } = api.containersOf(podsByName.get(pod));
  const t = { cluster, namespace, pod };
  return names.length > 1 && ui.container.value ? { ...t, container: ui.container.value } : t;
}

/** Shows a target in the pickers (after a deep link or a tab switch). */
async function showInPickers(t, firstTime = false) {
  if (firstTime || ui.cluster.value !== t.cluster) {
    if (![...ui.cluster.options].some((o) => o.value === t.cluster)) ui.cluster.append(option(t.cluster));
    ui.cluster.value = t.cluster;
    await loadNamespaces(t.namespace);
  }
  const namespaceChanged = ui.namespace.value !== t.namespace;
  ui.namespace.value = t.namespace;
  if (namespaceChanged || podPicked() !== t.pod || podsByName.size === 0) await loadPods(t.pod);
  fillContainers(t.container);
}

// ---- tabs ------------------------------------------------------------------------------

const same = (a, b) =>
  a.cluster === b.cluster && a.namespace === b.namespace && a.pod === b.pod &&
  (a.container ?? '') === (b.container ?? '');

/** Fills in the container of a multi-container pod when the target names none. */
async function withContainer(t) {
  if (t.container) return t;
  const listed = t.cluster === ui.cluster.value && t.namespace === ui.namespace.value.trim();
  try {
    const p = listed && podsByName.has(t.pod) ? podsByName.get(t.pod) : await api.pod(t.cluster, t.namespace, t.pod);
    const { names, preferred } = api.containersOf(p);
    return names.length > 1 ? { ...t, container: preferred } : t;
  } catch {
    return t; // the exec will say what is wrong
  }
}

/** whoami answers by cluster and namespace, asked once each (the pickers ask ahead). */
const whoamiCache = new Map();

function whoami(cluster, namespace) {
  const key = JSON.stringify([cluster, namespace]);
  if (!whoamiCache.has(key)) {
    const asked = api.whoami(cluster, namespace).catch((e) => {
      whoamiCache.delete(key);
      notice(`Cannot ask the gateway who you are: ${e.message}`);
      return { mode: 'shell' };
    });
    whoamiCache.set(key, asked);
  }
  return whoamiCache.get(key);
}

/** The label of a tab for a target. */
const nameOf = (t) => `${t.namespace}/${t.pod}${t.container ? `/${t.container}` : ''}`;

/** A tab's label: its target's name, numbered when another tab shows the same target. */
function labelOf(entry) {
  const twins = tabs.filter((t) => !t.watching && same(t.target, entry.target));
  const n = twins.indexOf(entry) + 1;
  return n > 1 ? `${nameOf(entry.target)} (${n})` : nameOf(entry.target);
}

/**
 * Opens a terminal tab. The tab and its focused terminal appear at once, before the gateway has
 * said which container and mode apply; what is typed meanwhile (and `early`, typed before the
 * page's script ran) goes to the session, in order, once it starts, so no keystroke is lost.
 * @param {route.Target} target
 * @param {string} [early]
 */
async function openTab(target, early = '', resumeFrom = null, attach = false) {
  const entry = makeTab(target, nameOf(target), false);
  const typed = [early];
  const typing = entry.view.term.onData((data) => typed.push(data));
  rememberTabs();

  const [full, who] = await Promise.all([withContainer(target), whoami(target.cluster, target.namespace)]);
  typing.dispose();
  if (entry.closed) return;
  const label = /** @type {HTMLElement} */ (entry.tab.querySelector('.tab-label'));
  entry.target = target = full;
  rememberTabs();
  label.textContent = labelOf(entry);
  label.title = `${target.cluster}: ${label.textContent}${who.mode === 'restricted' ? ' (restricted)' : ''}`;
  if (who.mode === 'restricted') entry.tab.classList.add('restricted');
  if (entry === active) history.replaceState(null, '', route.format(target));
  if (who.user) ui.user.textContent = who.user;
  if (who.denied) notice(who.denied); // the exec will be refused with the same words
  const view = entry.view;
  const onStatus = entry.onStatus;
  entry.session =
    who.mode === 'restricted'
      ? new RestrictedSession({ target, view, onStatus, whoami: who })
      : new ShellSession({ target, view, onStatus, resumeFrom, attach });
  entry.session.keyFilter = withModifiers;
  entry.session.start();
  const keys = typed.join('');
  if (keys) entry.session.input(keys);
}

/**
 * Opens a read-only tab on another live session (the Sessions view's Watch).
 * @param {import('./sessions-view.js').Entry} e
 */
function openWatchTab(e) {
  const target = { cluster: e.cluster, namespace: e.namespace, pod: e.pod, ...(e.container ? { container: e.container } : {}) };
  const entry = makeTab(target, `watch ${e.user}: ${nameOf(target)}`, true);
  const label = /** @type {HTMLElement} */ (entry.tab.querySelector('.tab-label'));
  label.title = `watching ${e.user}'s session in ${targetOf(e)} (read-only)`;
  entry.session = new WatchSession({ entry: e, view: entry.view, onStatus: entry.onStatus });
  entry.session.start();
}

/**
 * A new tab and its terminal, active at once; its session comes later.
 * @param {route.Target} target
 * @param {string} text the tab's label
 * @param {boolean} watching a read-only watch tab (not remembered, not in the URL)
 * @returns {Tab & {onStatus: (s: any) => void}}
 */
function makeTab(target, text, watching) {
  notice('');
  const pane = document.createElement('div');
  pane.className = 'pane';
  ui.panes.append(pane);
  ui.empty.hidden = true;
  const tab = document.createElement('div');
  tab.className = 'tab';
  tab.setAttribute('role', 'tab');
  const label = document.createElement('button');
  label.className = 'tab-label';
  label.textContent = text;
  const close = document.createElement('button');
  close.className = 'tab-close';
  close.textContent = '×';
  close.title = 'Close this terminal';
  tab.append(label, close);
  ui.tabs.append(tab);

  const entry = {
    target,
    tab,
    pane,
    status: { text: 'connecting…', state: 'connecting', canRestart: false },
    view: /** @type {any} */ (null),
    session: null,
    closed: false,
    watching,
    onStatus: (/** @type {any} */ _s) => {},
  };
  if (watching) tab.classList.add('watching');
  let flashTimer;
  const onStatus = (s) => {
    entry.status = s;
    tab.dataset.state = s.state;
    if (entry === active) showStatus();
    if (s.flash) {
      // A note such as "copied" stays for a moment only.
      clearTimeout(flashTimer);
      flashTimer = setTimeout(() => onStatus({ ...entry.status, flash: undefined }), FLASH_MS);
    }
  };
  entry.onStatus = onStatus;
  entry.view = createTerminal(pane, { onCopy: () => onStatus({ ...entry.status, flash: 'copied' }) });
  tabs.push(entry);
  if (!watching) label.textContent = labelOf(entry);
  label.addEventListener('click', () => activate(entry));
  close.addEventListener('click', () => closeTab(entry));
  activate(entry);
  return entry;
}

/** Where the open tabs are kept across a reload of this browser tab. */
const OPEN_TABS = 'podterm.open-tabs';

/**
 * Remembers the open tabs (their targets, in order, and what resumes each session), for a
 * reload to open them again.
 */
function rememberTabs() {
  try {
    const remembered = tabs.filter((t) => !t.watching).map((t) => ({
      hash: route.format(t.target),
      resume: t.session?.exec?.resumable ?? null,
    }));
    sessionStorage.setItem(OPEN_TABS, JSON.stringify(remembered));
  } catch {
    /* storage off: a reload opens the linked terminal only */
  }
}

/**
 * The tabs open before a reload: their targets and what resumes their sessions.
 * @returns {{target: route.Target, resume: any}[]}
 */
function rememberedTabs() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(OPEN_TABS) ?? '[]');
    return saved
      .map((e) => (typeof e === 'string' ? { hash: e, resume: null } : e))
      .map((e) => ({ target: route.parse(e.hash), resume: e.resume ?? null }))
      .filter((e) => e.target !== null);
  } catch {
    return [];
  }
}

/**
 * Whether a session is live in any tab. A reload resumes it, but the page cannot tell a reload
 * from closing the tab, which leaves it detached until the grace ends it: so it asks.
 */
const liveSessions = () => tabs.some((t) => !t.watching && t.session?.exec && !t.session.exec.ended);

/** @param {Tab} entry */
function activate(entry) {
  active = entry;
  for (const t of tabs) {
    t.pane.hidden = t !== entry;
    t.tab.setAttribute('aria-selected', String(t === entry));
  }
  // A watch tab is not a place a link can open again: the URL stays.
  if (!entry.watching) history.replaceState(null, '', route.format(entry.target));
  document.title = `${entry.watching ? 'watch ' : ''}${entry.target.pod} — podterm`;
  entry.view.fit.fit();
  entry.view.term.focus();
  showStatus();
}

/** @param {Tab} entry */
function closeTab(entry) {
  const i = tabs.indexOf(entry);
  tabs.splice(i, 1);
  rememberTabs();
  entry.closed = true;
  entry.session?.dispose();
  entry.view.dispose();
  entry.pane.remove();
  entry.tab.remove();
  if (active === entry) {
    active = null;
    const next = tabs[Math.min(i, tabs.length - 1)];
    if (next) activate(next);
    else {
      history.replaceState(null, '', location.pathname + location.search);
      document.title = 'podterm';
      ui.empty.hidden = false;
      showStatus();
    }
  }
}

function showStatus() {
  const s = active?.status ?? { text: '', state: '' };
  ui.status.textContent = s.flash ? `${s.text} · ${s.flash}` : s.text;
  ui.status.dataset.state = s.state ?? '';
  ui.status.dataset.tone = s.tone ?? '';
  ui.restart.hidden = !s.canRestart;
}

// ---- search ----------------------------------------------------------------------------

function openSearch() {
  if (!active) return;
  ui.search.hidden = false;
  ui.searchInput.select();
  ui.searchInput.focus();
}

function closeSearch() {
  ui.search.hidden = true;
  active?.view.search.clearDecorations();
  active?.view.term.focus();
}

/** Shows "3 of 12", "more than 1000" or "no match" beside the search field. */
function showMatches({ resultIndex, resultCount }) {
  const none = resultCount === 0 && ui.searchInput.value !== '';
  ui.searchCount.textContent = none
    ? 'no match'
    : resultCount === 0
      ? ''
      : resultIndex < 0
        ? `${resultCount}+ matches`
        : `${resultIndex + 1} of ${resultCount}`;
  ui.searchCount.classList.toggle('not-found', none);
  ui.searchInput.classList.toggle('not-found', none);
}

/** @type {{dispose(): void} | null} */
let counting = null;

function find(backwards = false) {
  const q = ui.searchInput.value;
  if (!active) return;
  const search = active.view.search;
  counting?.dispose();
  counting = search.onDidChangeResults(showMatches);
  if (!q) {
    search.clearDecorations();
    return showMatches({ resultIndex: -1, resultCount: 0 });
  }
  const opts = { ...active.view.searchOptions, incremental: !backwards };
  const found = backwards ? search.findPrevious(q, opts) : search.findNext(q, opts);
  if (!found) showMatches({ resultIndex: -1, resultCount: 0 });
}

// ---- wiring ----------------------------------------------------------------------------

ui.cluster.addEventListener('change', async () => {
  notice('');
  await namespacesThenPods();
});
ui.namespace.addEventListener('change', () => {
  // A change event for the namespace already shown (the field losing focus after Enter, or
  // to the Open button) must not reload the pods and lose the pick, or the click.
  if (pickedNamespace() === podsOf) return;
  notice('');
  loadPods();
});
ui.pod.addEventListener('change', () => {
  fillContainers();
  if (logsView) showLogs();
});
ui.container.addEventListener('change', () => {
  if (logsView) showLogs();
});
ui.podName.addEventListener('change', async () => {
  await lookUpPod(podPicked());
  fillContainers();
});
ui.form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = picked();
  if (t) openTab(t);
});
// ---- logs view -------------------------------------------------------------------------

/** @type {LogsView | null} */
let logsView = null;

/** The target the header's Logs, Files and Debug act on: the pickers', else the active tab's. */
function currentTarget() {
  const t = picked();
  if (!t) return active?.target ?? null;
  if (t.container) return t;
  const { preferred } = api.containersOf(podsByName.get(t.pod));
  return preferred ? { ...t, container: preferred } : t;
}

/** Shows the Logs view for the current target (again, from scratch). */
function showLogs() {
  const t = currentTarget();
  logsView?.stop();
  ui.logs.replaceChildren();
  if (!t) {
    notice('Pick a pod to read its logs.');
    return;
  }
  logsView = new LogsView({
    target: t,
    pane: ui.logs,
    onStatus: (s) => {
      if (!active) {
        ui.status.textContent = s.text;
        ui.status.dataset.tone = s.tone ?? '';
      }
    },
  });
  logsView.start();
}

ui.logsToggle.addEventListener('click', () => {
  const shown = ui.logs.hidden;
  ui.logs.hidden = !shown;
  ui.logsToggle.setAttribute('aria-expanded', String(shown));
  if (shown) showLogs();
  else {
    logsView?.stop();
    logsView = null;
    ui.logs.replaceChildren();
  }
  active?.view.fit.fit();
});

// ---- files -----------------------------------------------------------------------------

const filesForm = /** @type {HTMLFormElement} */ (ui.filesDialog.querySelector('form'));
const filesField = (name) => /** @type {HTMLInputElement} */ (filesForm.querySelector(`[name="${name}"]`));
/** @type {import('./route.js').Target | null} */
let filesTarget = null;
let fileLimit = Infinity;

/**
 * Opens the files dialog for `t`; `dropped` files are uploaded at once into its directory.
 * @param {import('./route.js').Target} t
 * @param {File[]} [dropped]
 */
async function openFiles(t, dropped = []) {
  filesTarget = t;
  /** @type {HTMLElement} */ (filesForm.querySelector('.files-target')).textContent = nameOf(t);
  if (!ui.filesDialog.open) ui.filesDialog.showModal();
  const who = await whoami(t.cluster, t.namespace);
  fileLimit = who.file_max_bytes ?? Infinity;
  const rules = filesForm.querySelector('.files-rules');
  const list = (globs) => (globs?.length ? globs.join(', ') : 'nothing');
  rules.textContent = who.files
    ? `Your rule lets you read ${list(who.files.read)} and write ${list(who.files.write)}.`
    : '';
  for (const f of dropped) uploadOne(t, f);
}

/** A row of the transfers list, with progress, a message and a Cancel button. */
function transferRow(label) {
  const li = document.createElement('li');
  li.className = 'transfer';
  li.dataset.state = 'running';
  const name = document.createElement('span');
  name.textContent = label;
  const bar = document.createElement('progress');
  const msg = document.createElement('span');
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.textContent = 'Cancel';
  li.append(name, bar, msg, cancel);
  filesForm.querySelector('.transfers').prepend(li);
  return {
    progress(done, total) {
      if (total) {
        bar.max = total;
        bar.value = done;
      }
      msg.textContent = total ? `${files.bytes(done)} of ${files.bytes(total)}` : files.bytes(done);
    },
    end(state, text) {
      li.dataset.state = state;
      msg.textContent = text;
      cancel.remove();
      if (state !== 'done') bar.remove();
    },
    onCancel(f) {
      cancel.addEventListener('click', f);
    },
  };
}

function downloadOne(t, path) {
  const row = transferRow(`↓ ${path}`);
  const abort = new AbortController();
  row.onCancel(() => abort.abort());
  files
    .download(t, path, { signal: abort.signal, onProgress: (d, n) => row.progress(d, n) })
    .then(({ blob, name }) => {
      files.save(blob, name);
      row.end('done', `saved as ${name} (${files.bytes(blob.size)})`);
    })
    .catch((e) => row.end(abort.signal.aborted ? 'cancelled' : 'failed', abort.signal.aborted ? 'cancelled' : e.message));
}

function uploadOne(t, file) {
  const dir = filesField('dir').value.trim() || '/tmp';
  const path = files.joinPath(dir, file.name);
  const row = transferRow(`↑ ${file.name} → ${path}`);
  if (file.size > fileLimit) {
    row.end('failed', `${files.bytes(file.size)} is more than this podterm's limit of ${files.bytes(fileLimit)}`);
    return;
  }
  const up = files.upload(t, file, path, { onProgress: (d, n) => row.progress(d, n) });
  let cancelled = false;
  row.onCancel(() => {
    cancelled = true;
    up.abort();
  });
  up.done
    .then((r) => row.end('done', `written (${files.bytes(r.bytes ?? file.size)}, sha256 ${String(r.sha256 ?? '').slice(0, 12)}…)`))
    .catch((e) => row.end(cancelled ? 'cancelled' : 'failed', cancelled ? 'cancelled: nothing was written' : e.message));
}

ui.filesToggle.addEventListener('click', () => {
  const t = currentTarget();
  if (t) openFiles(t);
  else notice('Pick a pod to copy files in or out of.');
});
filesField('download').addEventListener('click', () => {
  const path = filesField('path').value.trim();
  if (filesTarget && path) downloadOne(filesTarget, path);
});
filesField('upload').addEventListener('click', () => {
  const picked = [...(filesField('files').files ?? [])];
  if (filesTarget) for (const f of picked) uploadOne(filesTarget, f);
  filesField('files').value = '';
});
ui.filesDialog.addEventListener('close', () => active?.view.term.focus());
// Files dropped onto a terminal go into its container.
ui.panes.addEventListener('dragover', (ev) => {
  if (!active || !ev.dataTransfer?.types.includes('Files')) return;
  ev.preventDefault();
  active.pane.classList.add('drop-target');
});
ui.panes.addEventListener('dragleave', () => active?.pane.classList.remove('drop-target'));
ui.panes.addEventListener('drop', (ev) => {
  const dropped = [...(ev.dataTransfer?.files ?? [])];
  active?.pane.classList.remove('drop-target');
  if (!active || dropped.length === 0) return;
  ev.preventDefault();
  openFiles(active.target, dropped);
});

// ---- debug containers ------------------------------------------------------------------

const debugForm = /** @type {HTMLFormElement} */ (ui.debugDialog.querySelector('form'));
const debugField = (name) => /** @type {HTMLInputElement} */ (debugForm.querySelector(`[name="${name}"]`));
/** @type {{target: import('./route.js').Target, pod: any} | null} */
let debugging = null;

async function openDebug(t) {
  const error = debugForm.querySelector('.debug-error');
  error.textContent = '';
  /** @type {HTMLElement} */ (debugForm.querySelector('.debug-target')).textContent = `${t.namespace}/${t.pod}`;
  const [who, pod] = await Promise.all([
    whoami(t.cluster, t.namespace),
    api.pod(t.cluster, t.namespace, t.pod).catch(() => null),
  ]);
  debugging = { target: { cluster: t.cluster, namespace: t.namespace, pod: t.pod }, pod };
  const images = who.debug_images ?? [];
  $('debug-images').replaceChildren(...images.map((i) => option(i)));
  const { regular } = api.containersOf(pod);
  const target = /** @type {HTMLSelectElement} */ (/** @type {unknown} */ (debugField('target')));
  target.replaceChildren(option('', '(none)'), ...regular.map((n) => option(n)));
  target.value = t.container && regular.includes(t.container) ? t.container : (regular[0] ?? '');
  if (images.length === 0) error.textContent = who.denied ?? 'Your policy rule allows no debug images here.';
  showReuse();
  ui.debugDialog.showModal();
  debugField('image').focus();
}

function showReuse() {
  const image = debugField('image').value.trim();
  const again = debugging && image ? reusable(debugging.pod, image) : null;
  debugForm.querySelector('.debug-reuse').textContent = again
    ? `This reuses the running ${again.name} (${again.image}).`
    : '';
}

ui.debugToggle.addEventListener('click', () => {
  const t = currentTarget();
  if (t) openDebug(t);
  else notice('Pick a pod to debug.');
});
debugField('image').addEventListener('input', showReuse);
debugField('create').addEventListener('click', async () => {
  if (!debugging) return;
  const image = debugField('image').value.trim();
  const error = debugForm.querySelector('.debug-error');
  if (!image) {
    error.textContent = 'Name an image.';
    return;
  }
  error.textContent = '';
  const button = /** @type {HTMLButtonElement} */ (/** @type {unknown} */ (debugField('create')));
  button.disabled = true;
  try {
    const t = debugging.target;
    const { name } = await ensureDebugContainer(t, { image, target: debugField('target').value || undefined }, api);
    ui.debugDialog.close();
    // The pickers learn the new container; the tab attaches to it.
    if (ui.namespace.value.trim() === t.namespace && podPicked() === t.pod) await loadPods(t.pod);
    await openTab({ ...t, container: name }, '', null, true);
  } catch (e) {
    error.textContent = e.message;
  } finally {
    button.disabled = false;
  }
});

// ---- sessions view ---------------------------------------------------------------------

const sessionsView = new SessionsView({
  root: ui.sessions,
  onWatch: (e) => openWatchTab(e),
  onNotice: notice,
  me: () => ui.user.textContent ?? '',
  onToggle: (shown) => {
    ui.sessionsToggle.setAttribute('aria-expanded', String(shown));
    active?.view.fit.fit();
    // Closed: the keys go back to the terminal.
    if (!shown) active?.view.term.focus();
  },
});
ui.sessionsToggle.addEventListener('click', () => sessionsView.toggle());

ui.restart.addEventListener('click', () => active?.session?.start());
ui.searchInput.addEventListener('input', () => find());
ui.searchInput.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter') find(ev.shiftKey);
  else if (ev.key === 'Escape') closeSearch();
});
$('search-next').addEventListener('click', () => find());
$('search-prev').addEventListener('click', () => find(true));
$('search-close').addEventListener('click', closeSearch);
window.addEventListener(
  'keydown',
  (ev) => {
    const key = ev.key.toLowerCase();
    if ((ev.ctrlKey || ev.metaKey) && ev.shiftKey && key === 'f') {
      ev.preventDefault();
      ev.stopPropagation();
      openSearch();
    } else if (ev.ctrlKey && ev.shiftKey && key === 'm') {
      // No keyboard trap: the terminal takes Tab, so this key leaves it for the page.
      ev.preventDefault();
      ev.stopPropagation();
      /** @type {HTMLElement | null} */ (active?.tab.querySelector('.tab-label') ?? ui.namespace)?.focus();
    }
  },
  true, // before xterm sees the key
);

// ---- on-screen keys (touch screens) ------------------------------------------------------

const KEYS = { esc: '\x1b', tab: '\t', up: '\x1b[A', down: '\x1b[B', right: '\x1b[C', left: '\x1b[D' };
/** The sticky Ctrl and Alt of the on-screen keys: they apply to the next key, then let go. */
const modifiers = { ctrl: false, alt: false };

/** A typed key as the on-screen modifiers make it: Ctrl+letter → its control code, Alt → ESC first. */
function withModifiers(data) {
  if (!modifiers.ctrl && !modifiers.alt) return data;
  let out = data;
  if (modifiers.ctrl && data.length === 1) {
    const code = data.toUpperCase().charCodeAt(0);
    if (code >= 0x40 && code <= 0x5f) out = String.fromCharCode(code - 0x40);
  }
  if (modifiers.alt) out = `\x1b${out}`;
  modifiers.ctrl = modifiers.alt = false;
  for (const b of ui.keys.querySelectorAll('[data-mod]')) b.setAttribute('aria-pressed', 'false');
  return out;
}

const coarsePointer = window.matchMedia('(pointer: coarse)');
const showKeys = () => {
  ui.keys.hidden = !coarsePointer.matches;
  active?.view.fit.fit();
};
coarsePointer.addEventListener('change', showKeys);
showKeys();
// Tapping a key must not take the focus (and the phone's keyboard) away from the terminal.
ui.keys.addEventListener('pointerdown', (ev) => ev.preventDefault());
ui.keys.addEventListener('click', (ev) => {
  const button = /** @type {HTMLElement} */ (ev.target).closest('button');
  if (!button || !active?.session) return;
  const mod = button.dataset.mod;
  if (mod === 'ctrl' || mod === 'alt') {
    modifiers[mod] = !modifiers[mod];
    button.setAttribute('aria-pressed', String(modifiers[mod]));
  } else if (button.dataset.key) {
    active.session.input(withModifiers(KEYS[button.dataset.key]));
  }
  active.view.term.focus();
});
window.addEventListener('hashchange', async () => {
  const t = route.parse(location.hash);
  if (!t) return;
  const open = tabs.find((x) => !x.watching && same(x.target, t));
  if (open) activate(open);
  else {
    // The tab first, so that keys typed from now on reach it; the pickers follow.
    const opening = openTab(t);
    await showInPickers(t);
    await opening;
  }
});

/**
 * What was typed before this script ran: index.html focuses a hidden text field at once, so the
 * browser keeps those keys (Enter as a newline) until the terminal exists.
 */
function keysTypedEarly() {
  const field = /** @type {HTMLTextAreaElement | null} */ (document.getElementById('early-keys'));
  if (!field) return '';
  const text = field.value.replace(/\r?\n/g, '\r');
  field.remove();
  return text;
}

// Leaving the page ends its sessions (a closed tab's after the resume grace): ask first while
// one is live. Resumable ones are remembered with their latest offsets, for a reload.
window.addEventListener('pagehide', () => rememberTabs());
window.addEventListener('beforeunload', (ev) => {
  rememberTabs();
  if (!liveSessions()) return;
  ev.preventDefault();
  ev.returnValue = '';
});

/**
 * After a reload, every tab the page had opens again, in its order, resuming its session
 * where the gateway still holds it (else a new one); the linked one is the active one.
 * @param {route.Target | null} deepLink
 * @param {string} early keys typed before the script ran, for the linked terminal
 */
function reopenTabs(deepLink, early) {
  const remembered = rememberedTabs();
  const opening = [];
  let linked = null;
  for (const { target: t, resume } of remembered) {
    const isLink = deepLink !== null && same(t, deepLink) && linked === null;
    const p = openTab(t, isLink ? early : '', resume);
    opening.push(p);
    if (isLink) linked = tabs.at(-1);
  }
  if (deepLink && !linked) opening.push(openTab(deepLink, early));
  else if (linked) activate(linked);
  return opening.length > 0 ? Promise.all(opening) : null;
}

async function main() {
  const deepLink = route.parse(location.hash);
  const early = keysTypedEarly();
  // On a deep link (or a reload) the terminals open now, before any answer from the gateway:
  // the pickers fill in while the shells start.
  const opening = reopenTabs(deepLink, early);
  try {
    await loadClusters();
  } catch (e) {
    ui.cluster.replaceChildren();
    notice(`Cannot list clusters: ${e.message}`);
    return;
  }
  if (deepLink) {
    await showInPickers(deepLink, true);
    await opening;
  } else {
    await namespacesThenPods();
  }
}

main();
