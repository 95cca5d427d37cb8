// The terminal's two themes. Every colour a program may print in (the 16 ANSI colours and the
// default foreground) reaches WCAG AA contrast, 4.5:1, against its theme's background; a test
// (web/test/theme.test.js) computes it. xterm's defaults are tuned for dark backgrounds only.

export const DARK = {
  background: '#1e1f22',
  foreground: '#d8dade',
  cursor: '#d8dade',
  selectionBackground: '#3d5a80',
  black: '#8b9099',
  red: '#ff7b72',
  green: '#56d364',
  yellow: '#e3b341',
  blue: '#79c0ff',
  magenta: '#d2a8ff',
  cyan: '#56d4dd',
  white: '#d8dade',
  brightBlack: '#a1a7b0',
  brightRed: '#ffa198',
  brightGreen: '#7ee787',
  brightYellow: '#f2cc60',
  brightBlue: '#a5d6ff',
  brightMagenta: '#e2c5ff',
  brightCyan: '#96e8ee',
  brightWhite: '#f0f2f5',
};

export const LIGHT = {
  background: '#fbfbfa',
  foreground: '#24292f',
  cursor: '#24292f',
  selectionBackground: '#b6d3f2',
  black: '#24292f',
  red: '#b31d28',
  green: '#116329',
  yellow: '#7a4e00',
  blue: '#0550ae',
  magenta: '#7c3aad',
  cyan: '#0e6e78',
  white: '#5f6872',
  brightBlack: '#4d565f',
  brightRed: '#a00e26',
  brightGreen: '#1a6b32',
  brightYellow: '#6b4400',
  brightBlue: '#0a55c7',
  brightMagenta: '#8a3fc4',
  brightCyan: '#0b6470',
  brightWhite: '#626a74',
};

/** The colours a program may use as a foreground. */
export const FOREGROUNDS = [
  'foreground',
  'black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white',
  'brightBlack', 'brightRed', 'brightGreen', 'brightYellow', 'brightBlue', 'brightMagenta',
  'brightCyan', 'brightWhite',
];

/**
 * WCAG's contrast ratio of two `#rrggbb` colours.
 * @param {string} a
 * @param {string} b
 */
export function contrast(a, b) {
  const luminance = (hex) => {
    const [r, g, bl] = [1, 3, 5].map((i) => {
      const c = Number.parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}
