"""``local-brain eval``: repository-grounded questions whose answers are checked without a model."""
