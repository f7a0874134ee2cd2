"""Behaviour-cloning trainer (AdamW, warm-up + cosine, DDP under torchrun) and its learning-rate schedule."""

from .schedule import learning_rate
from .trainer import TrainConfig, checkpoint_dirs, latest_checkpoint, train

__all__ = ['TrainConfig', 'checkpoint_dirs', 'latest_checkpoint', 'learning_rate', 'train']
