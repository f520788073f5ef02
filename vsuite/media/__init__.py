"""Media layer: decoding video and audio, frame-sampling protocols, scene detection.

Importing this package is light: torch, av and decord load inside the functions that use
them. Media never imports models. Bad media raise `vsuite.media.errors` types (DataError,
exit code 5). Synthetic test media live in `vsuite.media.synth` (not re-exported).
"""

from .audio import AST_MEAN, AST_STD, VGGISH, VGGishParams, audio_sample_rate, kaldi_fbank, load_audio, resample, \
    vggish_examples, vggish_log_mel, vggish_mel_matrix
from .decode import BACKENDS, DecodedFrames, decord_available, iter_frames, read_frames, resolve_backend
from .errors import AudioTooShortError, BackendUnavailableError, EmptyVideoError, FrameRangeError, MediaError, \
    MediaNotFoundError, NoAudioStreamError, NoVideoStreamError, TruncatedMediaError, UnreadableMediaError
from .probe import VideoInfo, probe
from .sampling import VRIPT_POSITIONS, FrameSample, SamplingRecord, index_to_time, sample_clips, sample_fps, \
    sample_uniform, sample_vript_scene, segment_frames, time_to_index, uniform_indices, vript_positions
from .scenes import Scene, SceneDetector, detect_scenes, scenes_from_cuts

__all__ = [
    "AST_MEAN", "AST_STD", "BACKENDS", "VGGISH", "VRIPT_POSITIONS",
    "AudioTooShortError", "BackendUnavailableError", "DecodedFrames", "EmptyVideoError", "FrameRangeError",
    "FrameSample", "MediaError", "MediaNotFoundError", "NoAudioStreamError", "NoVideoStreamError",
    "SamplingRecord", "Scene", "SceneDetector", "TruncatedMediaError", "UnreadableMediaError", "VGGishParams",
    "VideoInfo",
    "audio_sample_rate", "decord_available", "detect_scenes", "index_to_time", "iter_frames", "kaldi_fbank",
    "load_audio", "probe", "read_frames", "resample", "resolve_backend", "sample_clips", "sample_fps",
    "sample_uniform", "sample_vript_scene", "scenes_from_cuts", "segment_frames", "time_to_index",
    "uniform_indices", "vggish_examples", "vggish_log_mel", "vggish_mel_matrix", "vript_positions",
]
