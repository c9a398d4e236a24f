"""gis_sync: the two-way mirror with ГИС ЖКХ AppealsAsync (docs/gis_sync.md)."""
