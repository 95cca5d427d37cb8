// Unit tests: the restricted prompt's shell-word splitter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShellWordsError, quote, split } from '../page/shellwords.js';

test('whitespace separates words', () => {
  assert.deepEqual(split('ls  -la\t/tmp '), ['ls', '-la', '/tmp']);
  assert.deepEqual(split(''), []);
  assert.deepEqual(split('   '), []);
});

test('single quotes keep everything literal', () => {
  assert.deepEqual(split(`echo 'a  b' '$HOME' 'back\\slash' '"'`), ['echo', 'a  b', '$HOME', 'back\\slash', '"']);
});

test('double quotes keep spaces and escape only $ ` " \\ and newline', () => {
  assert.deepEqual(split('echo "a  b" "\\$x" "\\"q\\"" "\\\\" "\\n"'), ['echo', 'a  b', '$x', '"q"', '\\', '\\n']);
  assert.deepEqual(split('echo "$HOME" "`id`"'), ['echo', '$HOME', '`id`']);
});

test('backslash escapes the next character outside quotes', () => {
  assert.deepEqual(split('echo a\\ b \\"c\\" \\\\ \\$'), ['echo', 'a b', '"c"', '\\', '$']);
  assert.deepEqual(split('echo a\\\nb'), ['echo', 'ab']);
});

test('adjacent pieces join and empty quotes make empty words', () => {
  assert.deepEqual(split(`a'b'"c"d`), ['abcd']);
  assert.deepEqual(split(`printf '' ""`), ['printf', '', '']);
});

test('no expansion, no operators', () => {
  assert.deepEqual(split('ls * ~ $PATH; rm -rf / | cat && x > y'), [
    'ls', '*', '~', '$PATH;', 'rm', '-rf', '/', '|', 'cat', '&&', 'x', '>', 'y',
  ]);
});

test('# starts a comment only at the start of a word', () => {
  assert.deepEqual(split('echo a#b # comment'), ['echo', 'a#b']);
  assert.deepEqual(split('# all comment'), []);
  assert.deepEqual(split(`echo '#x'`), ['echo', '#x']);
});

test('unicode is kept as is', () => {
  assert.deepEqual(split('echo "héllo wörld" 日本 🙂'), ['echo', 'héllo wörld', '日本', '🙂']);
});

test('unterminated quotes and trailing backslashes are errors', () => {
  assert.throws(() => split(`echo 'abc`), ShellWordsError);
  assert.throws(() => split('echo "abc'), ShellWordsError);
  assert.throws(() => split('echo "abc\\"'), ShellWordsError);
  assert.throws(() => split('echo abc\\'), ShellWordsError);
});

test('quote gives words that split back unchanged', () => {
  const words = ['plain', '', 'a b', "it's", '$HOME', '"', '\\', 'é 日本', '-x=1,2'];
  assert.deepEqual(split(words.map(quote).join(' ')), words);
  assert.equal(quote('plain'), 'plain');
});
