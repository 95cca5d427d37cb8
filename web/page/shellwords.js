// Splits one command line into argv by POSIX shell word rules: quotes and backslashes only,
// no expansion of any kind ($VAR, globs, ~, `...` stay literal).

/** Thrown for a line that ends inside a quote or after a lone backslash. */
export class ShellWordsError extends Error {}

/**
 * Splits `line` into words.
 * - unquoted: whitespace separates words; `\x` is a literal x; a trailing `\` is an error.
 * - '...': everything literal up to the next '.
 * - "...": literal except `\` before one of $ ` " \ newline, which it escapes.
 * - `#` at the start of a word begins a comment to the end of the line.
 * Adjacent pieces join into one word: a'b'"c" is "abc"; '' is an empty word.
 * @param {string} line
 * @returns {string[]}
 */
export function split(line) {
  const words = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i += 1;
    } else if (c === '#' && !inWord) {
      break;
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new ShellWordsError('line ends with a lone backslash');
      // A backslash-newline is a line continuation: it joins, adding nothing.
      if (line[i + 1] !== '\n') word += line[i + 1];
      inWord = true;
      i += 2;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ShellWordsError('unterminated single quote');
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i += 1;
      for (;;) {
        if (i >= line.length) throw new ShellWordsError('unterminated double quote');
        const d = line[i];
        if (d === '"') break;
        if (d === '\\' && i + 1 < line.length && '$`"\\\n'.includes(line[i + 1])) {
          if (line[i + 1] !== '\n') word += line[i + 1];
          i += 2;
        } else {
          word += d;
          i += 1;
        }
      }
      inWord = true;
      i += 1;
    } else {
      word += c;
      inWord = true;
      i += 1;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** Quotes one word so that `split` gives it back unchanged (for echoing argv). */
export function quote(word) {
  if (word === '') return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
