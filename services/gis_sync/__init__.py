"""gis_sync: skeleton only. Its work (issue #6) is not implemented yet; see README."""
