"""Apache Airflow provider for Huawei Cloud AOM (Application Operations Management) automation workflows."""

from __future__ import annotations

__version__ = "0.1.0"

#: The connection type the provider registers, and the connection id used when none is given.
#: Here, not in config.py, so that building an operator in a DAG file loads nothing else.
CONN_TYPE = "huaweicloud_aom"
DEFAULT_CONN_ID = "aom_default"
