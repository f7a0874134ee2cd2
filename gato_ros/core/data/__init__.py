"""Demonstrations: episodes in MCAP (rosbag2 layout) and the dataset that turns them into Gato tokens."""

from .mcap_io import (Episode, EpisodeError, EpisodeInfo, EpisodeWriter, episode_paths, load_episodes, read_episode,
                      read_info)

__all__ = ['Episode', 'EpisodeError', 'EpisodeInfo', 'EpisodeWriter', 'episode_paths', 'load_episodes',
           'read_episode', 'read_info']
