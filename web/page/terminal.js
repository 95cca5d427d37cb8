// An xterm.js terminal with what every tab wants: fit to its pane, clickable links, search,
// wide-character widths, a theme that follows the system, copy on selection and platform paste.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { SearchAddon } from '@xterm/addon-search';
import { Unicode11Addon } from '@xterm/addon-unicode11';
import { WebLinksAddon } from '@xterm/addon-web-links';
import { DARK, LIGHT } from './theme.js';

const darkScheme = window.matchMedia('(prefers-color-scheme: dark)');
export const isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

/**
 * @typedef {ReturnType<typeof createTerminal>} View
 */

/**
 * @param {HTMLElement} pane
 * @param {{onCopy?: (text: string) => void}} [o]
 */
export function createTerminal(pane, o = {}) {
  const term = new Terminal({
    allowProposedApi: true, // the unicode11 addon sets term.unicode
    cursorBlink: true,
    fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    scrollback: 10000,
    theme: darkScheme.matches ? DARK : LIGHT,
  });
  const fit = new FitAddon();
  const search = new SearchAddon();
  term.loadAddon(fit);
  term.loadAddon(search);
  term.loadAddon(new WebLinksAddon((event, uri) => {
    event.preventDefault();
    window.open(uri, '_blank', 'noopener');
  }));
  const unicode = new Unicode11Addon();
  term.loadAddon(unicode);
  term.unicode.activeVersion = '11';
  term.open(pane);

  const theme = () => {
    term.options.theme = darkScheme.matches ? DARK : LIGHT;
  };
  darkScheme.addEventListener('change', theme);

  // Copy on selection, like a desktop terminal: when the mouse lets go of a selection (not
  // when a search selects its match).
  pane.addEventListener('mouseup', () => {
    const text = term.getSelection();
    if (text) copy(text).then((ok) => ok && o.onCopy?.(text));
  });

  // Platform keys: on macOS Cmd+C/Cmd+V are the browser's own and never reach the shell.
  // Elsewhere Ctrl+Shift+C/V (and Ctrl+V, Shift+Insert) copy and paste, and Ctrl+C copies
  // when text is selected, else interrupts as usual.
  term.attachCustomKeyEventHandler((ev) => {
    if (ev.type !== 'keydown') return true;
    const key = ev.key.toLowerCase();
    if (isMac) return true;
    if (ev.ctrlKey && !ev.altKey && key === 'c' && (ev.shiftKey || term.hasSelection())) {
      const text = term.getSelection();
      if (text) copy(text).then((ok) => ok && o.onCopy?.(text));
      term.clearSelection();
      ev.preventDefault();
      return false;
    }
    // Returning false leaves the key to the browser, which fires the paste event xterm reads.
    if (ev.ctrlKey && !ev.altKey && key === 'v') return false;
    if (ev.ctrlKey && ev.shiftKey && key === 'f') return false; // the page's search
    if (ev.shiftKey && key === 'insert') return false;
    return true;
  });

  // The size the shell is told, on the pane for anyone (tests included) to read.
  const showSize = () => {
    pane.dataset.cols = String(term.cols);
    pane.dataset.rows = String(term.rows);
  };
  term.onResize(showSize);
  showSize();

  const resize = new ResizeObserver(() => {
    if (pane.offsetParent !== null) fit.fit(); // skip hidden tabs
  });
  resize.observe(pane);
  fit.fit();

  return {
    term,
    fit,
    search,
    /** Search options: matches are highlighted, so the addon counts them. */
    searchOptions: {
      caseSensitive: false,
      decorations: {
        matchOverviewRuler: '#888888',
        activeMatchColorOverviewRuler: '#ff8800',
        activeMatchBackground: '#ff8800',
      },
    },
    dispose() {
      resize.disconnect();
      darkScheme.removeEventListener('change', theme);
      term.dispose();
    },
  };
}

/**
 * @param {string} text
 * @returns {Promise<boolean>} whether the clipboard took it (it needs a secure context, i.e.
 *   https or loopback, and a focused page)
 */
async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
