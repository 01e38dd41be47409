"""Export a k = 1 GEM model as a legacy-layout sentence-transformers folder.

The layout every consumer reads (sentence-transformers 2.x-6.x, vLLM, TEI, llama.cpp/Ollama
converters): the HF weights at the root, ``modules.json`` listing Transformer (path "") +
Pooling (``pooling_mode_lasttoken``) + Normalize, ``sentence_bert_config.json`` and
``config_sentence_transformers.json``. The tokenizer's post-processor appends the GEM token, so
plain last-token pooling reproduces the GEM readout. The chat template is dropped from this
copy: it is an embedding-only folder, and sentence-transformers 6 would otherwise route plain
text through the template.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from tokenizers.processors import TemplateProcessing

from .atomic import atomic_folder
from .int8 import refuse_int8
from .model import GEMModel

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {
        "idx": 2,
        "name": "2",
        "path": "2_Normalize",
        "type": "sentence_transformers.models.Normalize",
    },
]


def export_sentence_transformers(gem: GEMModel, path: str | os.PathLike) -> Path:
    refuse_int8(gem.model, "export")
    if not gem.config.adapter_scope.exportable:  # a gated LoRA has no merged-weights form
        raise ValueError(
            f"adapter_scope {gem.config.adapter_scope} has no sentence-transformers export: its "
            "LoRA acts only at the GEM position, which last-token pooling cannot express"
        )
    if gem.config.num_special_tokens != 1 or gem.config.readout != "mean":
        raise ValueError("the sentence-transformers export needs k = 1 (last-token pooling)")
    with atomic_folder(path) as tmp:
        gem.model.save_pretrained(tmp, safe_serialization=True)
        tok = _appending_tokenizer(gem)
        tok.save_pretrained(tmp)
        (tmp / "chat_template.jinja").unlink(missing_ok=True)
        dim, fmt = gem.get_embedding_dimension(), gem.config.embedding_format
        (tmp / "modules.json").write_text(json.dumps(MODULES, indent=2))
        (tmp / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": fmt.max_length, "do_lower_case": False}, indent=2)
        )
        (tmp / "config_sentence_transformers.json").write_text(
            json.dumps(
                {
                    "prompts": dict(fmt.prompts),
                    "default_prompt_name": fmt.default_prompt_name,
                    "similarity_fn_name": "cosine",
                    "model_type": "SentenceTransformer",
                },
                indent=2,
            )
        )
        pooling = {
            f"pooling_mode_{m}": False
            for m in (
                "cls_token",
                "mean_tokens",
                "max_tokens",
                "mean_sqrt_len_tokens",
                "weightedmean_tokens",
            )
        }
        pooling.update(
            word_embedding_dimension=dim, pooling_mode_lasttoken=True, include_prompt=True
        )
        (tmp / "1_Pooling").mkdir()
        (tmp / "1_Pooling/config.json").write_text(json.dumps(pooling, indent=2))
        (tmp / "2_Normalize").mkdir()
    return Path(path)


def _appending_tokenizer(gem: GEMModel):
    """A copy of the tokenizer that appends the readout suffix + GEM token after every
    (truncated) text, keeping whatever the tokenizer adds in front (BOS): the model's
    :class:`~gemlm.embedding_format.EmbeddingFormat` as a post-processor."""
    tok = copy.deepcopy(gem.tokenizer)
    tok.chat_template = None
    fmt = gem.config.embedding_format
    head, tail = fmt.bos_ids(tok), fmt.tail_ids(tok)
    # Multi-id template pieces under safe names: token strings such as ':"' break the parser.
    pieces = [("[GEM_HEAD]", head), ("[GEM_TAIL]", tail)] if head else [("[GEM_TAIL]", tail)]
    specials = [
        {"id": n, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids)} for n, ids in pieces
    ]
    single = "[GEM_HEAD] $A [GEM_TAIL]" if head else "$A [GEM_TAIL]"
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=single, special_tokens=specials
    )
    return tok
