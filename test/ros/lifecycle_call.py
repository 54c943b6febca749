"""Call a lifecycle node's get_state / change_state from a process of its own; print the answer.

    python lifecycle_call.py /depth_node get          -> the current state id
    python lifecycle_call.py /depth_node TRANSITION   -> 1 if the node ended in the transition's goal state, else 0

A fresh process, as ``ros2 lifecycle`` is. In a full suite run (many participants already on the domain) the
test process's own client stayed unmatched with the node's lifecycle services for 45 s, and a fresh process's
first change_state got no response in 30 s: the request arrives, the reply can be lost while the reply side
is still being matched, and (CI, round 7) a request itself can be lost: the node stayed inactive. So a
request that gets no answer within ``ATTEMPT_S`` is asked again (get_state); a transition without an answer is
judged by the state the node reports afterwards, and asked again only while the node is still where it was
(asking twice for a transition that did happen would be refused).
"""
import sys

import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState

ATTEMPT_S = 10.0
GOAL = {Transition.TRANSITION_ACTIVATE: State.PRIMARY_STATE_ACTIVE,
        Transition.TRANSITION_DEACTIVATE: State.PRIMARY_STATE_INACTIVE,
        Transition.TRANSITION_CONFIGURE: State.PRIMARY_STATE_INACTIVE,
        Transition.TRANSITION_CLEANUP: State.PRIMARY_STATE_UNCONFIGURED}


def _ask(node, client, request, timeout=ATTEMPT_S):
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    return future.result() if future.done() else None


def _state(node, client, attempts=4):
    for _ in range(attempts):
        result = _ask(node, client, GetState.Request())
        if result is not None:
            return result.current_state.id
    raise TimeoutError("no answer to get_state")


def main(node_name: str, action: str, timeout: float = 30.0) -> int:
    rclpy.init()
    node = rclpy.create_node("md2_lifecycle_call")
    try:
        get = node.create_client(GetState, f"{node_name}/get_state")
        if not get.wait_for_service(timeout_sec=timeout):
            print(f"no get_state service on {node_name} after {timeout:.0f} s", file=sys.stderr)
            return 2
        if action == "get":
            print(_state(node, get))
            return 0
        change = node.create_client(ChangeState, f"{node_name}/change_state")
        if not change.wait_for_service(timeout_sec=timeout):
            print(f"no change_state service on {node_name} after {timeout:.0f} s", file=sys.stderr)
            return 2
        transition = int(action)
        start = _state(node, get)
        for attempt in range(4):
            result = _ask(node, change, ChangeState.Request(transition=Transition(id=transition)))
            if result is not None:   # a refusal after a resend may mean the first request did arrive, late
                print(int(result.success or (attempt > 0 and _state(node, get) == GOAL[transition])))
                return 0
            now = _state(node, get)     # the reply, or the request, was lost: what counts is the state now
            print(f"change_state {transition}: no answer in {ATTEMPT_S:.0f} s (attempt {attempt + 1}); "
                  f"state {start} -> {now}", file=sys.stderr)
            if now != start:
                print(int(now == GOAL[transition]))
                return 0
        print(0)
        return 0
    except TimeoutError as err:
        print(f"{node_name}: {err}", file=sys.stderr)
        return 3
    finally:
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
