"""Safety controller core: limits, rate limiting, workspace via FK, watchdog and e-stop latch (docs/design.md §5)."""

from gato_ros.core.safety.config import SafetyConfig
from gato_ros.core.safety.filter import SafetyFilter, SafetyOutput
from gato_ros.core.safety.proposal import Proposal
from gato_ros.core.safety.status import SafetyStatus

__all__ = ['Proposal', 'SafetyConfig', 'SafetyFilter', 'SafetyOutput', 'SafetyStatus']
