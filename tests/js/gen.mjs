// gen.mjs N SEED [--bpe] > texts.jsonl
// Deterministic test inputs for the differential tokenizer tests: mixed scripts, combining marks, emoji (ZWJ
// sequences, skin tones, flags), control and format characters, Unicode spaces, special-token strings, very
// long words (around the 100-character WordPiece limit), empty and whitespace-only strings.
// Left out, because transformers.js itself differs from the Rust `tokenizers` there (docs/tokenizers.md):
// upper-case Sigma (JS lower-cases a final sigma to ς), supplementary-plane CJK (JS tests UTF-16 units), and
// with --bpe U+0085 and U+FEFF (JS \s includes U+FEFF but not U+0085; Oniguruma the other way round).
const [n = 500, seed = 1] = process.argv.slice(2).filter((a) => !a.startsWith('--')).map(Number);
const bpe = process.argv.includes('--bpe');

let state = seed >>> 0;
function rand() {   // mulberry32
	state = (state + 0x6D2B79F5) >>> 0;
	let t = state;
	t = Math.imul(t ^ (t >>> 15), t | 1);
	t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
	return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const chars = (s) => [...s];

const scripts = {
	latin: chars('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'),
	digits: chars('0123456789'),
	accents: chars('àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝßøØæÆœŒłŁđĐğĞışŞİǅǈǲẞÅ'),
	greek: chars('αβγδεζηθικλμνξοπρστυφχψωςΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΤΥΦΧΨΩάέήίόύώϊϋΐΰ'),
	cyrillic: chars('абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯіїєґ'),
	cjk: chars('的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学對說們為豈更車賈滑'),
	kana: chars('あいうえおかきくけこさしすせそアイウエオカキクケコガギグゲゴーｱｲｳﾞ'),
	hangul: chars('한국어안녕하세요감사합니다ㄱㄴㄷ'),
	arabic: chars('مرحبابالعالماللغةالعربيةًٌٍَُِّْ٠١٢٣'),
	hebrew: chars('שלוםעולםְֱֲֳִֵֶַָֹֻּ'),
	devanagari: chars('नमस्तेदुनियाहिन्दी०१२३ःँं'),
	thai: chars('สวัสดีชาวโลกภาษาไทย๑๒๓'),
	symbols: chars('€£¥₹₽$©®™°±×÷∑∏√∞≈≠≤≥←→↑↓♠♣♥♦★☆§¶†‡•…‰′″‹›«»“”‘’„‚–—¿¡½²³ﬁﬀℌℍ①'),
	punct: chars('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'),
};
const combining = chars('\u0300\u0301\u0302\u0303\u0308\u0327\u0323\u031B\u0345\u20DD\u0903\u093F\u1AB0\uFE0F');
const emoji = ['😀', '😂', '🥰', '👍', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '❤️', '🇫🇷', '🤖', '🫠', '✨', '🔥', '1️⃣', '🧑🏿‍💻', '𝕳𝖊𝖑𝖑𝖔', '𝟘𝟙'];
const spaces = [' ', ' ', ' ', '  ', '\t', '\n', '\r\n', '\u00A0', '\u2002', '\u2003', '\u2009', '\u200A', '\u202F',
	'\u205F', '\u3000', '\u1680', '\u2028', '\u2029', '\u000B', '\u000C'];
const controls = ['\u0000', '\u0001', '\u0007', '\u0008', '\u001B', '\u007F', '\u0080', '\u009F', '\u00AD', '\u200B',
	'\u200C', '\u200D', '\u200E', '\u2060', '\uFFFD', '\uE000', '\uF8FF', '\u061C'].concat(bpe ? [] : ['\u0085', '\uFEFF']);
const specials = ['[CLS]', '[SEP]', '[MASK]', '[UNK]', '[PAD]', '<s>', '</s>', '<mask>', '<pad>', '<unk>'];
const names = Object.keys(scripts);

function word() {
	const a = pick(names), b = rand() < 0.3 ? pick(names) : a;
	const len = 1 + Math.floor(rand() * (rand() < 0.1 ? 30 : 10));
	let w = '';
	for (let i = 0; i < len; i++) {
		w += pick(scripts[rand() < 0.5 ? a : b]);
		if (rand() < 0.08) w += pick(combining);
		if (rand() < 0.02) w += pick(controls);
	}
	return w;
}

function longWord() {
	const len = pick([99, 100, 101, 102, 150, 300, 1000]);
	const pool = scripts[pick(['latin', 'accents', 'cyrillic', 'digits', 'kana'])];
	let w = '';
	if (rand() < 0.3) return pick(pool).repeat(len);
	for (let i = 0; i < len; i++) w += pick(pool);
	return w;
}

function text() {
	const r = rand();
	if (r < 0.03) return '';
	if (r < 0.08) { let s = ''; const k = 1 + Math.floor(rand() * 5); for (let i = 0; i < k; i++) s += pick(spaces); return s; }
	if (r < 0.12) return longWord();
	const nw = 1 + Math.floor(rand() * 25);
	let s = rand() < 0.2 ? pick(spaces) : '';
	for (let i = 0; i < nw; i++) {
		const x = rand();
		if (x < 0.62) s += word();
		else if (x < 0.72) s += pick(scripts.punct) + (rand() < 0.3 ? pick(scripts.punct) : '');
		else if (x < 0.8) s += pick(emoji);
		else if (x < 0.85) s += pick(controls);
		else if (x < 0.89) s += pick(specials);
		else if (x < 0.92) s += longWord();
		else if (x < 0.96) s += "'" + pick(['s', 't', 're', 've', 'm', 'll', 'd', 'S', 'T']);
		else s += pick(scripts.symbols);
		s += rand() < 0.8 ? pick(spaces) : '';
	}
	return s;
}

const out = [];
for (let i = 0; i < n; i++) {
	const k = 1 + Math.floor(rand() * 3);
	const texts = [];
	for (let j = 0; j < k; j++) texts.push(text());
	out.push(JSON.stringify({ texts }));
}
process.stdout.write(out.join('\n') + '\n');
