"""The provider's Airflow UI plugin: the AOM execution panel on task instances (Airflow ≥ 3.1)."""
