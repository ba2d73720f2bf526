"""Start vLLM's OpenAI-compatible server on a local checkpoint, on loopback, and stop it cleanly.

    >>> with VLLMServer("runs/x/checkpoints/round-003") as server:
    ...     policy = make_policy("openai", base_url=server.base_url)

`host="0.0.0.0"` listens on every interface and advertises this machine's address in `base_url`, so
rollout workers on other machines (sparring.executors) can share the server.

The server runs in its own process group; `stop()` sends SIGINT (vLLM then stops its engine
processes) and SIGKILLs the whole group if anything lingers, so nothing outlives the context.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sparring.errors import SparringError
from sparring.policies.hf import check_checkpoint
from sparring.policies.vllm_engine import INSTALL_HINT


def this_machine_address() -> str:
    """The address other machines reach this one at: Ray's node address when Ray is up, else the one the
    hostname resolves to."""
    try:
        import ray

        if ray.is_initialized():
            return ray.util.get_node_ip_address()
    except ImportError:
        pass
    return socket.gethostbyname(socket.gethostname())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    def __init__(self, path: str | Path, *, port: int | None = None, served_model_name: str | None = None,
                 dtype: str = "float32", max_model_len: int = 512, startup_timeout_s: float = 300.0,
                 extra_args: tuple[str, ...] = (), host: str = "127.0.0.1"):
        """`extra_args` go last on vLLM's command line, so they override the CPU-minded defaults above
        (e.g. `("--dtype", "bfloat16", "--max-model-len", "4096")` on a GPU)."""
        self.path, self.port = check_checkpoint(path), port or free_port()
        self.name = served_model_name or self.path.name
        everywhere = host in ("0.0.0.0", "::")
        self.local_host = "127.0.0.1" if everywhere else host  # where this process checks its health
        self.base_url = f"http://{this_machine_address() if everywhere else host}:{self.port}/v1"
        self.command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.path),
                        "--served-model-name", self.name, "--host", host, "--port", str(self.port),
                        "--dtype", dtype, "--enforce-eager", "--max-model-len", str(max_model_len),
                        "--logprobs-mode", "processed_logprobs", *extra_args]
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkdtemp(prefix="sparring-vllm-")) / "server.log"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text()[-chars:] if self.log_path.exists() else ""

    def start(self) -> VLLMServer:
        if importlib.util.find_spec("vllm") is None:
            raise ImportError(f"serving needs vLLM: {INSTALL_HINT}")
        env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
               "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self.process.poll() is not None:
                raise SparringError(f"the vLLM server for {self.path} exited with {self.process.returncode} before "
                                    f"it was ready; its log ends:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.local_host}:{self.port}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return self
            except OSError:  # refused until the engine is up
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SparringError(f"the vLLM server for {self.path} was not ready after {self.startup_timeout_s} s; "
                                    f"its log ends:\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self, grace_s: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(timeout=grace_s)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the group: engine processes that outlived the server too
        except ProcessLookupError:
            pass
        process.wait()

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
