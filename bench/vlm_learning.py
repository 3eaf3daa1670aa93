"""A tiny vision-language model learns what only the image tells: the colour of a drawn figure (or, with --video, which way it moves).

    python bench/vlm_learning.py [--quick] [--check] [--model tiny-llava --template llava | --model tiny-gemma3 --template gemma3] [--video | --audio]

Rows as LLaMA-Factory's `mllm_demo` has them (sharegpt, `<image>` in the user turn, an `images` column of paths),
drawn by `llmfactory.demo.shape_rows`: "What colour is the shape?" (red, green, blue, yellow) or "Is it a square
or a circle?". The text is the same for every image, so without seeing the image a model can do no better than
chance (50% over the mix of questions: 1/4 for colour, 1/2 for shape).

The tiny Qwen2-VL (`tiny-qwen2-vl`, random weights) is fine-tuned through `llmfactory.train` with template
`qwen2_vl`: the language model (full tuning, it is tiny) and the projector train, the vision tower stays frozen
(LLaMA-Factory's default for it). `--model tiny-llava --template llava` runs the same on the tiny LLaVA-1.5 (CLIP tower,
MLP projector, Llama; 16 image tokens an image), `--model tiny-gemma3 --template gemma3` on the tiny Gemma 3 (SigLIP
tower pooled to 4 image tokens, Gemma 3 text model). Held-out accuracy: for each held-out image the colour the model finds most likely
(scored by the summed log-probability of the reply tokens, through the library's own template, media plugin
and collator). Printed: accuracy before and after, and the target (`--check` exits 1 below it):
at least 0.90 held out (`--quick`, the CI version, fewer rows and epochs: at least 0.75).

`--video` (Qwen2-VL only): rows as LLaMA-Factory's `mllm_video_demo` has them (`<video>`, a `videos` column of mp4
paths), drawn by `llmfactory.demo.motion_rows`: a square crosses four frames to the left or to the right, and the
question asks which way. No single frame tells (the positions are random), so the model must compare frames:
chance is 0.50, the targets the same.

`--audio` (the tiny Qwen2-Audio, template `qwen2_audio`): rows as LLaMA-Factory's `mllm_audio_demo` has them
(`<audio>`, an `audios` column of WAV paths), drawn by `llmfactory.demo.tone_rows`: a tone at a random pitch,
length and loudness, and the question asks whether it is high (1-2 kHz) or low (150-400 Hz). Chance is 0.50.
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1"); os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COLOURS = ["red", "green", "blue", "yellow"]


def write_rows(path: Path, name: str, n: int, seed: int, video: bool = False, audio: bool = False) -> list[dict]:
    from llmfactory.demo import MLLM_AUDIO_ENTRY, MLLM_ENTRY, MLLM_VIDEO_ENTRY, motion_rows, shape_rows, tone_rows, write_audio, write_dataset, write_video
    if audio:
        rows, clips = tone_rows(n, seed=seed, audio_dir=f"{name}_audios")
        for rel, samples in clips.items(): write_audio(samples, path / rel)
        write_dataset(path, name, rows, **MLLM_AUDIO_ENTRY)
        return rows
    if video:
        rows, videos = motion_rows(n, seed=seed, video_dir=f"{name}_videos")
        for rel, frames in videos.items(): write_video(frames, path / rel)
        write_dataset(path, name, rows, **MLLM_VIDEO_ENTRY)
        return rows
    rows, images = shape_rows(n, seed=seed, image_dir=f"{name}_images")
    for rel, img in images.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True); img.save(path / rel)
    write_dataset(path, name, rows, **MLLM_ENTRY)
    return rows


def accuracy(model_dir: str, adapter: str | None, rows: list[dict], data_dir: Path, template: str = "qwen2_vl", answers=COLOURS) -> dict:
    "Held-out accuracy of the model (with `adapter`), picking the likeliest of the `answers` (the four colours)"
    import torch
    from llmfactory.collators import get_collator
    from llmfactory.hparams import FinetuningArguments, ModelArguments
    from llmfactory.mm_plugin import get_mm_plugin, load_media_processor, media_settings
    from llmfactory.model import load_model, load_tokenizer
    from llmfactory.processors import IGNORE_INDEX
    from llmfactory.template_auto import get_template
    from llmfactory.tiny import resolve_model_path
    m = ModelArguments(model_name_or_path=model_dir, adapter_name_or_path=adapter)
    tok = load_tokenizer(m)
    model = load_model(tok, m, FinetuningArguments(finetuning_type="lora" if adapter else "full")).eval()
    tpl, plugin = get_template(template), get_mm_plugin(template)
    proc = load_media_processor(resolve_model_path(model_dir), **media_settings(m))
    collate = get_collator(tok, plugin=plugin, processor=proc)
    right, total = {}, {}
    for r in rows:
        q, answer = r["messages"][0]["content"], r["messages"][1]["content"]
        kind = "accuracy"
        images, videos, audios = ([str(data_dir / p) for p in r.get(k, [])] for k in ("images", "videos", "audios"))
        loaded, clips, sounds = plugin.images(images, proc), plugin.videos(videos, proc), plugin.audios(audios, proc)
        feats = []
        for cand in answers:
            msgs = plugin.expand([{"role": "user", "content": q}, {"role": "assistant", "content": cand}], loaded, proc, videos=clips, audios=sounds)
            (p, a), = tpl.encode_multiturn(tok, msgs)
            feats.append({"input_ids": p + a, "attention_mask": [1] * (len(p) + len(a)), "labels": [IGNORE_INDEX] * len(p) + a,
                          "images": images, "videos": videos, "audios": audios})
        batch = collate(feats)
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
        lab = batch["labels"][:, 1:]
        lp = torch.gather(logits[:, :-1].log_softmax(-1), 2, lab.clamp(min=0)[..., None])[..., 0] * (lab != IGNORE_INDEX)
        best = answers[int(lp.sum(-1).argmax())]
        right[kind] = right.get(kind, 0) + (best == answer); total[kind] = total.get(kind, 0) + 1
    return {"accuracy": right["accuracy"] / total["accuracy"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the CI version: fewer rows and epochs, a lower target")
    p.add_argument("--check", action="store_true", help="exit 1 if the held-out accuracy misses its target")
    p.add_argument("--model", default="tiny-qwen2-vl", help="the vision-language model (a tiny name or a folder)")
    p.add_argument("--template", default="qwen2_vl", help="its template (llava for tiny-llava, gemma3 for tiny-gemma3)")
    p.add_argument("--video", action="store_true", help="the video task (which way the square moves) instead of the images' colours")
    p.add_argument("--audio", action="store_true", help="the audio task (is the tone high or low) on the tiny Qwen2-Audio")
    a = p.parse_args(argv)
    if a.audio: a.model, a.template = "tiny-qwen2-audio", "qwen2_audio"
    import llmfactory
    n_train, epochs, target = (160, 4, 0.75) if a.quick else (400, 6, 0.90)
    if a.video and a.quick: n_train = 320  # comparing frames takes more steps to find than a colour
    answers, chance = (["left", "right"], 0.5) if a.video else (["high", "low"], 0.5) if a.audio else (COLOURS, 0.25)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_rows(data, "shapes_train", n_train, seed=1, video=a.video, audio=a.audio)
        test = write_rows(data, "shapes_test", 80, seed=2, video=a.video, audio=a.audio)
        t0 = time.time()
        before = accuracy(a.model, None, test, data, a.template, answers)
        out = Path(tmp) / "out"
        metrics = llmfactory.train(dict(model_name_or_path=a.model, stage="sft", dataset="shapes_train", dataset_dir=str(data),
                                        template=a.template, finetuning_type="full", freeze_multi_modal_projector=False, output_dir=str(out), per_device_train_batch_size=8,
                                        learning_rate=3e-3, num_train_epochs=epochs, lr_scheduler_type="constant", logging_steps=10,
                                        save_strategy="no", report_to="none", cutoff_len=128, seed=0, disable_tqdm=True))
        after = accuracy(str(out), None, test, data, a.template, answers)  # the fine-tuned model folder: weights, tokenizer, image processor
    fmt = lambda d: f"{d['accuracy']:.2f}"
    tag = ("vlm" if a.model == "tiny-qwen2-vl" else f"vlm {a.model}") + (" video" if a.video else " audio" if a.audio else "")  # the default run prints as it always has
    print(f"{tag} held-out accuracy before: {fmt(before)}")
    print(f"{tag} held-out accuracy after:  {fmt(after)}  ({n_train} rows x {epochs} epochs, loss {metrics['first_loss']:.2f} -> {metrics['last_loss']:.2f}, {time.time() - t0:.0f} s)")
    ok = after["accuracy"] >= target
    print(f"{tag} target: held-out accuracy >= {target:.2f} (chance {chance:.2f}): {'met' if ok else 'MISSED'}")
    return 0 if ok or not a.check else 1


if __name__ == "__main__":
    sys.exit(main())
