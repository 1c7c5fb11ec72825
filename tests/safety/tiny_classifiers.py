"""Tiny random classifiers saved in the real Hugging Face layout, made to answer a verdict.

The weights are random; the classification head is set so that one label always wins
(its bias far above the others'), so a test can make the production pipeline say
"nsfw" or "normal" and check what the service does with each answer.
"""

from __future__ import annotations

from pathlib import Path


def _force(head, labels: list[str], verdict: str) -> None:  # type: ignore[no-untyped-def]
    import torch

    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[labels.index(verdict)] = 10.0


def build_image_classifier(
    folder: Path, verdict: str, labels: tuple[str, ...] = ("normal", "nsfw")
) -> Path:
    """A tiny ``ViTForImageClassification`` + ``ViTImageProcessor`` that always answers
    ``verdict``, saved with ``save_pretrained`` (config.json, model.safetensors,
    preprocessor_config.json)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    names = list(labels)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    model = ViTForImageClassification(config).eval()
    _force(model.classifier, names, verdict)
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def build_text_classifier(
    folder: Path, verdict: str, labels: tuple[str, ...] = ("sfw", "nsfw")
) -> Path:
    """A tiny ``BertForSequenceClassification`` + WordPiece tokenizer answering ``verdict``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "cute", "sticker"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    names = list(labels)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    model = BertForSequenceClassification(config).eval()
    _force(model.classifier, names, verdict)
    model.save_pretrained(folder)
    return folder
