"""Model cards: the README.md written beside config.json and model.safetensors (Hugging Face format)."""

from __future__ import annotations

from .models.config import ModelConfig

NIH_ATTRIBUTION = (
    "Data: NIH Clinical Center ChestX-ray14, https://nihcc.app.box.com/v/ChestXray-NIHCC. X. Wang, Y. Peng, L. Lu, "
    "Z. Lu, M. Bagheri, R. M. Summers, \"ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on "
    "Weakly-Supervised Classification and Localization of Common Thorax Diseases\", IEEE CVPR 2017, pp. 3462-3471."
)


#: Copyright notice and licence of the reproduce-chexnet predictions (BSD 3-Clause), reproduced in the card of a
#: model trained with them (the licence asks that it accompany derived works in their documentation).
REPRODUCE_CHEXNET_LICENSE = """BSD 3-Clause License

Copyright (c) 2018, John Zech
All rights reserved.

Redistribution and use in source and binary forms, with or without modification, are permitted provided that the
following conditions are met:

* Redistributions of source code must retain the above copyright notice, this list of conditions and the following
  disclaimer.
* Redistributions in binary form must reproduce the above copyright notice, this list of conditions and the following
  disclaimer in the documentation and/or other materials provided with the distribution.
* Neither the name of the copyright holder nor the names of its contributors may be used to endorse or promote
  products derived from this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES,
INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY,
WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE."""


def teacher_attribution(teacher: dict | None) -> str:
    """The Attribution paragraph for the teacher whose predictions trained the model (empty without one)."""
    if not teacher:
        return ""
    text = (
        f"Teacher predictions (knowledge distillation): {teacher.get('source', 'not recorded')}. "
        f"Credit: {teacher.get('credit', 'not recorded')}. Licence: {teacher.get('licence', 'not recorded')}."
    )
    if "reproduce-chexnet" in str(teacher.get("file", "")) + str(teacher.get("source", "")):
        quoted = "\n".join(("> " + line).rstrip() for line in REPRODUCE_CHEXNET_LICENSE.splitlines())
        text += "\n\n" + quoted
    return text


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
    teacher = ((config.extra or {}).get("training") or {}).get("teacher")
    if teacher:
        lines += [teacher_attribution(teacher), ""]
    return "\n".join(lines)
