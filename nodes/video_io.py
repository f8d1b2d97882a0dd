"""Loading a clip (with its sound) and saving the result as an mp4 that browsers play."""
from __future__ import annotations

import logging
import os

import folder_paths

from ..host.memory import available_ram
from ..host.progress import progress_reporter
from ..host.saving import workflow_metadata
from ..video.budget import check_fits
from ..video.codecs import best_backend
from ..video.io import DEFAULT_CRF, VIDEO_EXTENSIONS, planned_load, read_sound, read_video, write_video
from .socket_types import CATEGORY

log = logging.getLogger("rerender")
MP4V_WARNING = ("Saved as MPEG-4 part 2 (OpenCV), which browsers cannot preview, without sound or workflow: "
                "install PyAV (pip install av) or ffmpeg for H.264.")


def input_videos() -> list[str]:
    """Video files in ComfyUI's input folder (what the upload button puts there)."""
    folder = folder_paths.get_input_directory()
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.lower().endswith(VIDEO_EXTENSIONS) and os.path.isfile(os.path.join(folder, n)))


def _video_path(video: str, path: str) -> str:
    return os.path.expanduser(path.strip()) if path and path.strip() else folder_paths.get_annotated_filepath(video)


def _int(default: int, minimum: int, tooltip: str, step: int = 1) -> tuple:
    return ("INT", {"default": default, "min": minimum, "max": 100000, "step": step, "tooltip": tooltip})


class RerenderLoadVideo:
    DESCRIPTION = ("Load a video as an image batch with its sound, resized the way Rerender expects (short side 512, "
                   "sides multiples of 64). Stops before decoding when the run would not fit into RAM. "
                   "Interchangeable with Video Helper Suite's Load Video.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE", "INT", "FLOAT", "AUDIO")
    RETURN_NAMES = ("frames", "frame_count", "fps", "audio")
    OUTPUT_TOOLTIPS = ("Every loaded frame, as one image batch.", "How many frames were loaded.",
                       "Frames per second of what was loaded (the source's divided by select_every_nth).",
                       "The sound during the loaded frames (frames ÷ fps seconds); silence when the clip has none.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video": (input_videos(), {"video_upload": True,
                                       "tooltip": "A video in ComfyUI's input folder (upload one with the button)."}),
            "path": ("STRING", {"default": "", "tooltip": "Or: the full path of a video anywhere; overrides 'video'."}),
            "frame_load_cap": _int(0, 0, "Load at most this many frames (0: all)."),
            "skip_first_frames": _int(0, 0, "Frames to skip at the start."),
            "select_every_nth": _int(1, 1, "Keep every n-th frame (2 halves the frame rate)."),
            "short_side": _int(512, 0, "Resize so the short side is this and both sides are multiples of 64, as the "
                                       "paper does (0: keep the size; sides must then be multiples of 8).", step=64),
            "crop_left": _int(0, 0, "Pixels to remove on the left, before resizing."),
            "crop_right": _int(0, 0, "Pixels to remove on the right, before resizing."),
            "crop_top": _int(0, 0, "Pixels to remove at the top, before resizing."),
            "crop_bottom": _int(0, 0, "Pixels to remove at the bottom, before resizing."),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, video, path):
        chosen = _video_path(video, path) if (path and path.strip()) or video else ""
        if not chosen or not os.path.isfile(chosen):
            where = f"'{path}'" if path and path.strip() else f"'{video}' in the input folder"
            return f"No video at {where}: upload a video or give its full path in 'path'."
        return True

    @classmethod
    def IS_CHANGED(cls, video, path, **_):
        chosen = _video_path(video, path)
        return os.path.getmtime(chosen) if os.path.isfile(chosen) else float("nan")

    def load(self, video, path, frame_load_cap, skip_first_frames, select_every_nth, short_side, crop_left, crop_right,
             crop_top, crop_bottom):
        chosen, crop = _video_path(video, path), (crop_left, crop_right, crop_top, crop_bottom)
        planned = planned_load(chosen, frame_load_cap, skip_first_frames, select_every_nth, short_side, crop)
        if planned is not None:
            check_fits(planned, available_ram(), name="video")
        report = progress_reporter(planned.frames if planned else 1)
        loaded = read_video(chosen, frame_load_cap, skip_first_frames, select_every_nth, short_side, crop,
                            name="video", on_frame=report)
        sound, silent_because = read_sound(chosen, loaded, skip_first_frames, select_every_nth)
        if silent_because:
            log.info("Rerender Load Video: %s; its audio output is silence of the loaded length.", silent_because)
        return loaded.frames, loaded.frames.shape[0], float(loaded.fps), sound


class RerenderSaveVideo:
    DESCRIPTION = ("Save an image batch as an H.264 mp4 in the output folder, with its sound and the workflow inside "
                   "(drag it back onto the canvas), and a preview. Uses PyAV, else ffmpeg, else OpenCV's MPEG-4 "
                   "(no sound, no browser preview). The file appears only once it is complete.")
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Full path of the saved video.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The frames to save, in order."}),
            "fps": ("FLOAT", {"default": 20.0, "min": 0.01, "max": 240.0, "step": 0.01,
                              "tooltip": "Frames per second (connect Load Video's fps to keep the source's)."}),
            "filename_prefix": ("STRING", {"default": "rerender/video",
                                           "tooltip": "Name of the file in the output folder; may contain sub-folders."}),
        }, "optional": {
            "audio": ("AUDIO", {"tooltip": "Sound to put in the file (Load Video's audio keeps the clip's); cut or "
                                           "padded with silence to the video's length, saved as AAC."}),
            "crf": ("INT", {"default": DEFAULT_CRF, "min": 0, "max": 51, "step": 1,
                            "tooltip": "H.264 quality: lower is better and larger (0 lossless, 17-23 look clean, "
                                       "each +6 halves the size)."}),
        }, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save(self, images, fps, filename_prefix, audio=None, crf=DEFAULT_CRF, prompt=None, extra_pnginfo=None):
        output_dir = folder_paths.get_output_directory()
        try:
            folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
                filename_prefix, output_dir, images.shape[2], images.shape[1])
        except OSError as error:
            raise ValueError(f"Cannot create the output folder for '{filename_prefix}' in {output_dir} ({error}): "
                             "check the folder's permissions or change the prefix.") from None
        filename = f"{name}_{counter:05}_.mp4"
        backend = best_backend()
        if backend == "opencv" and audio is not None:
            log.warning("Rerender Save Video: neither PyAV nor ffmpeg is installed, so the sound was dropped.")
        report = progress_reporter(images.shape[0])
        codec = write_video(images, fps, os.path.join(folder, filename), crf, audio,
                            workflow_metadata(prompt, extra_pnginfo), backend, on_frame=lambda i: report(i + 1))
        preview = {"filename": filename, "subfolder": subfolder, "type": "output"}
        ui = {"images": [preview], "animated": (True,)}
        if codec == "mp4v":
            log.warning("Rerender Save Video: %s", MP4V_WARNING)
            ui["text"] = [MP4V_WARNING]
        return {"ui": ui, "result": (os.path.join(folder, filename),)}


NODE_CLASS_MAPPINGS = {"RerenderLoadVideo": RerenderLoadVideo, "RerenderSaveVideo": RerenderSaveVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"RerenderLoadVideo": "Rerender: Load Video", "RerenderSaveVideo": "Rerender: Save Video"}
