"""Demonstrations: episodes as rosbag2 bags (and single MCAP files of earlier recordings), bag import, the dataset
card, and the dataset that turns episodes into Gato tokens."""

from .mcap_io import (Episode, EpisodeError, EpisodeInfo, EpisodeWriter, episode_paths, load_episodes, read_episode,
                      read_info)

__all__ = ['Episode', 'EpisodeError', 'EpisodeInfo', 'EpisodeWriter', 'episode_paths', 'load_episodes',
           'read_episode', 'read_info']
