"""How close the gateway's count_tokens estimate (filter/count_tokens.py) is to exact o200k counts.

    .venv/bin/python -m bench.count_tokens

The corpus is this repository's README and Python sources in 2,000-character pieces (prose and
code, as agents send them) plus a few sentences in other scripts; the yardstick is `quicktok`'s
o200k_base (token for token the same as tiktoken's), a test dependency.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import quicktok

from filter.count_tokens import text_tokens

ROOT = Path(__file__).resolve().parent.parent
OTHER_SCRIPTS = {
    "Chinese": "我们的网关会在请求发送之前检查模型的限制，并删除模型不支持的参数。这样客户端就不会收到提供商的错误。",
    "Japanese": "このゲートウェイは、リクエストを送信する前にモデルの制限を確認し、サポートされていないパラメータを削除します。",
    "Russian": "Шлюз проверяет ограничения модели перед отправкой запроса и удаляет параметры, которые модель не поддерживает.",
    "German": "Das Gateway prüft die Grenzen des Modells, bevor es die Anfrage sendet, und entfernt nicht unterstützte Parameter.",
    "French": "La passerelle vérifie les limites du modèle avant d'envoyer la requête et supprime les paramètres non pris en charge.",
}


def corpus() -> list[str]:
    files = [ROOT / "README.md", *sorted((ROOT / "filter").rglob("*.py")), *sorted((ROOT / "tests").rglob("*.py"))]
    pieces = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        pieces += [text[i:i + 2000] for i in range(0, len(text), 2000) if text[i:i + 2000].strip()]
    return pieces


def errors(texts: list[str]) -> tuple[float, list[float]]:
    """(error of the total, per-text relative errors) of the estimate against exact o200k counts."""
    encoding = quicktok.get_encoding("o200k_base")
    exact = [len(encoding.encode(t)) for t in texts]
    estimated = [text_tokens(t) for t in texts]
    return sum(estimated) / sum(exact) - 1, [(e - x) / x for e, x in zip(estimated, exact)]


def main() -> None:
    pieces = corpus()
    total, each = errors(pieces)
    absolute = sorted(abs(e) for e in each)
    print(f"{len(pieces)} pieces of English prose and code: total {total:+.1%}, "
          f"median |error| {statistics.median(absolute):.1%}, p90 {absolute[int(len(absolute) * 0.9)]:.1%}")
    for name, text in OTHER_SCRIPTS.items():
        print(f"{name}: {errors([text])[0]:+.1%}")


if __name__ == "__main__":
    main()
