"""Safety status codes, in the spirit of moveit_servo's StatusCode, with diagnostic levels."""

import enum


class SafetyStatus(enum.IntEnum):
    """What the filter did on a tick. Every code except OK comes with a human-readable reason.

    OK                          the proposal is followed (velocity scaling may still slow it down, keeping direction)
    DECELERATE_FOR_JOINT_BOUND  slowing along the path so the arm can stop before a joint limit minus the margin
    DECELERATE_FOR_WORKSPACE    slowing along the path so the tool can stop inside the workspace box / above the table
    JOINT_BOUND                 holding: any motion of the proposal would run into a joint limit minus the margin
    WORKSPACE_BOUND             holding: any motion of the proposal would take the tool out of the box / into the table
    STALE_INPUT                 observation or proposal too old, missing, expired or out of order: braking to a hold
    ESTOP                       e-stop latched: braking to a hold at the acceleration limit; request_reset() clears it
    INVALID_INPUT               non-finite / wrong-length input, bad speed scale or tick time: input rejected, braking
    """

    OK = 0
    DECELERATE_FOR_JOINT_BOUND = 1
    DECELERATE_FOR_WORKSPACE = 2
    JOINT_BOUND = 3
    WORKSPACE_BOUND = 4
    STALE_INPUT = 5
    ESTOP = 6
    INVALID_INPUT = 7

    @property
    def level(self) -> int:
        """diagnostic_msgs/DiagnosticStatus level: 0 OK, 1 WARN (limiting or stale), 2 ERROR (e-stop, bad input)."""
        if self is SafetyStatus.OK:
            return 0
        return 2 if self in (SafetyStatus.ESTOP, SafetyStatus.INVALID_INPUT) else 1
