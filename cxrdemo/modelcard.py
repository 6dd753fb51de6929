"""Model cards: the README.md written beside config.json and model.safetensors (Hugging Face format)."""

from __future__ import annotations

from .config import ModelConfig

NIH_ATTRIBUTION = (
    "Data: NIH Clinical Center ChestX-ray14, https://nihcc.app.box.com/v/ChestXray-NIHCC. X. Wang, Y. Peng, L. Lu, "
    "Z. Lu, M. Bagheri, R. M. Summers, \"ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on "
    "Weakly-Supervised Classification and Localization of Common Thorax Diseases\", IEEE CVPR 2017, pp. 3462-3471."
)


def front_matter(config: ModelConfig) -> str:
    """Hub model-card YAML front matter."""
    return (
        "---\nlibrary_name: cxrdemo\nlicense: apache-2.0\npipeline_tag: image-classification\n"
        "tags:\n- chest-x-ray\n- medical-imaging\n- multi-task\n- grad-cam\n"
        "base_model_relation: finetune\n---\n"
    )


def render_card(config: ModelConfig, sha256: str, body: str = "") -> str:
    """A model card for ``config``: what it is, its inputs and outputs, checksum, and ``body`` (metrics, limits)."""
    lines = [
        front_matter(config),
        f"# cxrdemo multi-task model: {config.architecture}",
        "",
        "Research model for the cxrdemo validation app. **Not a medical device; not for diagnosis.**",
        "",
        f"- architecture: `{config.architecture}` backbone, classification head ({config.class_mode}, "
        f"{len(config.classes)} classes), box head {config.box_hidden} -> {config.num_boxes} box(es) ({config.box_mode})",
        f"- input: {config.input_size}x{config.input_size}, {config.channels} channel(s), mean {config.mean}, std {config.std}",
        f"- classes: {', '.join(config.classes)}",
        f"- box classes: {', '.join(config.box_classes)}",
        f"- starting weights: {config.pretrained}",
        f"- `model.safetensors` sha256: `{sha256}`",
        "",
    ]
    if body:
        lines += [body.rstrip(), ""]
    lines += ["## Attribution", "", NIH_ATTRIBUTION, ""]
    return "\n".join(lines)
