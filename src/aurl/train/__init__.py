"""Training: `train` and `resume` over a run folder of checkpoints, metrics and the best weights.

    result = train(load_settings(overrides={"model.mode": "vae"}), run_dir="runs/vae")  # TrainResult
    result = resume("runs/vae")                                   # continues the newest checkpoint

docs/train.md describes the run folder, the checkpoint format, monitoring and the anomaly detector.
"""

from aurl.train.loop import TrainingDiverged
from aurl.train.monitor import EVENT_KINDS, TrainEvent
from aurl.train.result import TrainResult
from aurl.train.run import resume, run_settings, train, with_preset

__all__ = [
    "EVENT_KINDS",
    "TrainEvent",
    "TrainResult",
    "TrainingDiverged",
    "resume",
    "run_settings",
    "train",
    "with_preset",
]
