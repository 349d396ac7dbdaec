"""Shared pytest fixtures: each lives in a module under tests/support, registered here."""

pytest_plugins: list[str] = ["fake_llm", "s3_server", "k8s_cluster", "api_harness"]
