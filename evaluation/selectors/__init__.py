"""Reads of the evaluation app, one module per idea:

- `campaigns`: a campaign's questions and their value domains, item details, provenance;
- `packing`: the value counts of an item's ratings packed into one integer (the one copy of that
  rule: the SQL that packs and unpacks them, and numpy unpacking);
- `exclusions`: gold items and annotators below the gold accuracy, left out by default;
- `agreement`: Krippendorff's alpha of a campaign from packed counts, and its cache fingerprint;
- `annotators`: per-annotator statistics of the dashboard;
- `filters`: `ItemFilters`, what an export keeps;
- `scores`: the item-score SQL builder behind exports and the dashboard's item table.
"""
