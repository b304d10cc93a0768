"""The Kubeflow pipeline (one pipeline per file), its compiler, and the local / cluster runners."""
