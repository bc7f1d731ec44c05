"""Apache Airflow provider for Huawei Cloud AOM (Application Operations Management) automation workflows."""

from __future__ import annotations

__version__ = "0.1.0"
