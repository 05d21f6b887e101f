"""Architecture families. Importing this package registers every family in `FAMILIES`; a new architecture
is one more module here (and its import below)."""
from .base import FAMILIES, Family, family_for_model_type, head_formats, register
from . import bert, gpt2, llama, vit, wav2vec2, whisper  # noqa: F401  (registration side effect)
from . import granite, olmo2, phi3, qwen3  # noqa: F401  (Llama-type decoders: Qwen3, OLMo 2, Granite, Phi-3)
from . import falcon, gpt_neox, gptj, opt, phi, stablelm  # noqa: F401  (GPT-NeoX, GPT-J, Phi, StableLM, Falcon, OPT)
from . import mixtral, qwen2_moe  # noqa: F401  (mixture of experts)
from . import gemma  # noqa: F401  (Gemma, Gemma 2, Gemma 3 text)
from . import bart, marian  # noqa: F401  (BART, mBART, Marian)
from . import t5  # noqa: F401  (T5, T5 v1.1 / Flan-T5, mT5)
from . import distilbert, electra, roberta  # noqa: F401  (BERT-shaped encoders: RoBERTa, XLM-R, CamemBERT)
from . import clip  # noqa: F401  (CLIP: image and text towers)
from . import modernbert  # noqa: F401  (ModernBERT: local/global rotary encoder)
from . import albert, mpnet  # noqa: F401  (ALBERT: shared layers; MPNet: relative position bias)
from . import deberta_v2  # noqa: F401  (DeBERTa-v2/v3: disentangled attention)
from . import deit, hubert  # noqa: F401  (DeiT: ViT with a distillation token; HuBERT: Wav2Vec2's network)

__all__ = ["FAMILIES", "Family", "family_for_model_type", "head_formats", "register"]
