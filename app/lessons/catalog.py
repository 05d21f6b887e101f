"""The lessons, as data. Each is about one embedded model (tests/app/test_model_lists.py allows names here only).

Numbers in the text ({best}, {best_weight:.0%}, ...) are computed by the step's view from the live model, so a
claim ("the strongest head is ...") holds on whatever checkpoint is loaded; the words only say how to read it.
A lesson whose model is not in this installation's registry is left out (``available_lessons``).
"""
from __future__ import annotations

from models.embedded import EMBEDDED_MODELS

from .lesson import Lesson, Step

IT_SENTENCE = "The animal didn't cross the street because it was too tired."
WIDE_SENTENCE = "The animal didn't cross the street because it was too wide."
CAPITALS = "The capital of France is Paris. The capital of Italy is"

RESOLVING_IT = Lesson(
    key="it", title="Attention resolves “it”", model="minilm",
    summary="An encoder reads a whole sentence at once. Which word does “it” look at?",
    steps=(
        Step("Reading an attention map", "token_attention",
             "Each row is a word attending; each column a word attended to; darker means more attention. This is "
             "layer {layer}, the mean of its heads. The row of “{query}” puts {on_key:.0%} of its attention on "
             "“{key}”.",
             "Which word should “it” look at to know what it refers to?",
             dict(text=IT_SENTENCE, query="it", key="animal", other="street", show="pattern", layer=0, head="mean")),
        Step("Every head, one number each", "token_attention",
             "One cell per head (columns) and layer (rows): the share of “{query}”'s attention that lands on "
             "“{key}”. The strongest is {best} with {best_weight:.0%}; {over_half} of the {n_heads_total} heads give "
             "“{key}” more than half.",
             "Are the strong cells in early or in late layers? Why might that be?",
             dict(text=IT_SENTENCE, query="it", key="animal", other="street", show="grid")),
        Step("The strongest head up close", "token_attention",
             "Head {best}'s whole pattern. Find the row of “{query}”: its darkest cell is “{most}” "
             "({most_weight:.0%}).",
             "What do the other rows of this head look at? Is it a head for pronouns, or something more general?",
             dict(text=IT_SENTENCE, query="it", key="animal", other="street", show="pattern", head="best")),
        Step("Change one word", "token_attention",
             "The same head, {best}, found on the first sentence, now reads “…because it was too wide”. “{query}” "
             "gives {on_key:.0%} to “{key}” and {on_other:.0%} to “{other}” (before: {before_key:.0%} and "
             "{before_other:.0%}).",
             "Did the head follow the meaning? What would a model need to know to get this right?",
             dict(text=WIDE_SENTENCE, query="it", key="animal", other="street", show="row", head="best",
                  best_text=IT_SENTENCE)),
    ))

HEAD_KINDS = Lesson(
    key="heads", title="Heads specialise", model="smollm2",
    summary="A language model reads random tokens, then the same tokens again. Some heads find the repeat.",
    steps=(
        Step("Previous-token heads", "head_kinds",
             "The input is {length} random tokens, then the same {length} again. Each cell is a head's "
             "previous-token score: the share of attention a token gives the token just before it. Top heads: "
             "{top}.",
             "Why would a model want a head that always looks one step back?",
             dict(length=20, seed=0, column="previous_token", show="grid")),
        Step("One previous-token head", "head_kinds",
             "Head {best}'s pattern: rows are tokens reading, columns tokens read. Its weight sits on the line just "
             "below the diagonal: each token looks at the one before ({best_score:.0%} on average).",
             "What could a later head do with “the token before me was X”?",
             dict(length=20, seed=0, column="previous_token", show="pattern")),
        Step("Heads that look at the first token", "head_kinds",
             "The share of attention each head puts on the very first token. Top heads: {top}. A head with nothing "
             "useful to read parks its attention there (an “attention sink”).",
             "If a head puts nearly all its attention on the first token, what does it add to the other tokens?",
             dict(length=20, seed=0, column="first_token", show="grid")),
        Step("Induction heads", "head_kinds",
             "In the second copy, the induction score is the share of a token's attention on the token that came "
             "after it the first time: a head that can then predict what comes next. Top heads: {top}.",
             "Which layers hold the induction heads: early, middle or late? Why not the first layer?",
             dict(length=20, seed=0, column="induction", show="grid")),
        Step("The induction stripe", "head_kinds",
             "Head {best}'s pattern: in the second half a stripe runs parallel to the diagonal, {length} - 1 "
             "tokens back: each token looks at what followed its first occurrence ({best_score:.0%} on average).",
             "How could this help a model continue a text it has seen before?",
             dict(length=20, seed=0, column="induction", show="pattern")),
    ))

LOGIT_LENS = Lesson(
    key="lens", title="The residual stream and the logit lens", model="smollm2",
    summary="Read what every layer would predict if the model stopped there.",
    steps=(
        Step("Every layer's guess", "logit_lens",
             "Rows are layers (0 = the embeddings), columns the last input tokens; each cell is the token that "
             "layer would predict next, darker when it is surer. At the last token the final layer predicts "
             "“{final}” ({final_prob:.0%}).",
             "Where in depth do the guesses stop being punctuation and become words?",
             dict(text=CAPITALS, show="lens", window=8, answer=" Rome")),
        Step("When does the answer appear?", "logit_lens",
             "The probability each layer gives “{answer}” after the last token. It is the top guess from layer "
             "{first_top} on; {final_prob_answer:.0%} at the end.",
             "Why does the answer appear so late, when “Italy” was read at the start?",
             dict(text=CAPITALS, show="answer", answer=" Rome")),
        Step("The stream grows", "logit_lens",
             "Each block adds its output to the residual stream. The median norm of a token's state grows from "
             "{first_norm:.1f} after the embeddings to {last_norm:.1f} after the last block.",
             "If each layer only adds, how can a late layer change the guess?",
             dict(text=CAPITALS, show="norms", answer=" Rome")),
    ))

PRUNING = Lesson(
    key="pruning", title="What pruning heads costs", model="minilm-sentiment",
    summary="Remove the least important heads step by step, and watch the accuracy.",
    steps=(
        Step("How important is each head?", "pruning",
             "Each head's gradient importance (Michel et al. 2019) on {n_score} labelled sentences: how much the loss "
             "would change if the head were turned down. The most important is {best}.",
             "Do a few heads matter a lot, or do many matter a little?",
             dict(show="importance", n_score=24, n_test=48, step=0.2, limit=0.8)),
        Step("The pruning curve", "pruning",
             "Accuracy on {n_test} held-out sentences as the least important {step:.0%} of the heads go, step by "
             "step: {start_accuracy:.0%} with every head, {end_accuracy:.0%} with {end_pruned:.0%} pruned.",
             "How many heads could you remove before the class would notice?",
             dict(show="curve", n_score=24, n_test=48, step=0.2, limit=0.8)),
        Step("What it saves", "pruning",
             "The same steps against the parameters left: from {start_parameters:,} to {end_parameters:,}. Most "
             "parameters sit outside attention (embeddings, MLPs), so pruning heads alone saves little.",
             "Is pruning heads worth it for this model? What else could you remove?",
             dict(show="parameters", n_score=24, n_test=48, step=0.2, limit=0.8)),
    ))

VIT_PATCHES = Lesson(
    key="vit", title="How a ViT looks at a digit", model="vit-digits",
    summary="The image is cut into patches; one extra position, [CLS], reads them and decides the digit.",
    steps=(
        Step("Where [CLS] looks in the last layer", "vit_patches",
             "Red patches receive attention from [CLS] in layer {layer} (mean of heads); the model says “{label}”. "
             "The {ink_patches} patches with ink get {ink_share:.0%} of the attention on patches.",
             "Is the attention on the strokes of the digit, or somewhere else?",
             dict(image="digit_3.png", mode="layer", layer="last")),
        Step("The first layer", "vit_patches",
             "The same image in layer {layer}. The patches with ink get {ink_share:.0%}; the busiest patch is at row "
             "{peak_row}, column {peak_col}.",
             "Why might the first layer look more evenly than the last?",
             dict(image="digit_3.png", mode="layer", layer=0)),
        Step("Through every layer: rollout", "vit_patches",
             "Attention rollout (Abnar & Zuidema 2020) follows attention through every layer, with the residual "
             "path. Patches with ink get {ink_share:.0%}; the model says “{label}”.",
             "Does rollout agree with the last layer's picture?",
             dict(image="digit_3.png", mode="rollout")),
        Step("Another digit", "vit_patches",
             "Rollout for another digit: the model says “{label}”; the busiest patch is at row {peak_row}, column "
             "{peak_col}.",
             "Which parts of a 7 would you look at to tell it from a 1?",
             dict(image="digit_7.png", mode="rollout")),
    ))

WHISPER = Lesson(
    key="whisper", title="How Whisper lines words up with sound", model="whisper-tiny.en",
    summary="The decoder writes words; its cross-attention looks back at the sound.",
    steps=(
        Step("Words against time", "whisper_alignment",
             "Top: the waveform. Below: one row per word Whisper wrote (“{transcript}”), coloured where in the "
             "recording its cross-attention looks, using the heads the checkpoint marks as following time. "
             "{forward} of {steps} words look at the same moment as the word before or later.",
             "Can you point to the moment each word is spoken?",
             dict(clip="clip_01.wav", heads="alignment", show="alignment")),
        Step("All heads at once", "whisper_alignment",
             "The same words with every cross-attention head averaged: {forward} of {steps} words keep moving "
             "forward in time.",
             "Why might the checkpoint name only a few heads for timing?",
             dict(clip="clip_01.wav", heads="all", show="alignment")),
        Step("The encoder listens to itself", "whisper_alignment",
             "Encoder self-attention in layer {layer} (mean of heads): moments of the recording (rows) reading "
             "other moments (columns), {seconds:.1f} s of sound.",
             "What does the bright band along the diagonal tell you?",
             dict(clip="clip_01.wav", show="encoder", layer=0)),
    ))

TRANSLATION = Lesson(
    key="translation", title="Cross-attention in translation", model="numbers-to-words",
    summary="A text-to-text model writes words from digits. Which digit does each word read?",
    steps=(
        Step("Which digit does each word read?", "translation_alignment",
             "The model wrote “{output}”. One row per token it wrote; colours show how much of that step's "
             "cross-attention went to each input token (layer {layer}, mean of heads). Strongest: {pairs}.",
             "Does “thousand” look at the first digit? Which digit does the tens word read?",
             dict(text="4071", layer=0, head="mean")),
        Step("A later layer", "translation_alignment",
             "The same sentence, cross-attention of layer {layer}: {pairs}.",
             "Did the word for the tens move to another digit? Why might a layer look at the end marker </s>?",
             dict(text="4071", layer=1, head="mean")),
        Step("Another number", "translation_alignment",
             "Another number: the model wrote “{output}”; in layer {layer}: {pairs}.",
             "Is it one digit to one word? Where does the mapping break, and why?",
             dict(text="2583", layer=0, head="mean")),
    ))

LESSONS: tuple[Lesson, ...] = (RESOLVING_IT, HEAD_KINDS, LOGIT_LENS, PRUNING, VIT_PATCHES, WHISPER, TRANSLATION)


def available_lessons() -> list[Lesson]:
    """The lessons whose model this installation has (the translator ships with the text-to-text work)."""
    return [lesson for lesson in LESSONS if lesson.model in EMBEDDED_MODELS]
