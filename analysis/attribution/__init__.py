"""Which part of the input made the model decide: attribution through Captum for text, images and audio.

    from analysis.attribution import attribute_text, rank_correlation, report_html
    report = attribute_text(model, "A wonderful, moving film.", methods=["integrated_gradients", "occlusion"])
    report.results["integrated_gradients"].scores        # (T,) one score per token
    rank_correlation(report)                              # do the methods agree?

Images: `attribute_image(vit_model, image)`; audio: `attribute_audio(whisper_or_classifier, clip)`;
any tensor model: `attribute_tensor(forward_func, TensorInput(values, baseline, unit_dims))`.
"""
from .audio import attribute_audio
from .compare import method_summary, rank_correlation
from .completeness import TOLERANCE, integrate_until_complete
from .export import report_csv, report_frame, report_html
from .image import attribute_image
from .methods import DEFAULT_METHODS, METHODS, MethodSpec, ParamSpec, check_params
from .result import Attribution, AttributionReport, Target
from .tensor import attribute_tensor
from .tensor_methods import AttentionMap, TensorInput
from .text import attribute_text

__all__ = [
    "attribute_text", "attribute_image", "attribute_audio", "attribute_tensor", "TensorInput", "AttentionMap", "Attribution", "AttributionReport",
    "Target", "METHODS", "DEFAULT_METHODS", "MethodSpec", "ParamSpec", "check_params", "rank_correlation",
    "method_summary", "report_frame", "report_csv", "report_html", "integrate_until_complete", "TOLERANCE",
]
