"""notifier: skeleton only. Its work (issue #5) is not implemented yet; see README."""
