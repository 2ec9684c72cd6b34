"""The fields of a dragon record, as the AWS course's data set names them.

The producer validates records against them and the worker stores exactly ``ALL_FIELDS``;
both read them here, the one module both may import.
"""

from __future__ import annotations

NAME_FIELD = "dragon_name_str"
REQUIRED_FIELDS = (
    NAME_FIELD,
    "description_str",
    "family_str",
    "location_city_str",
    "location_state_str",
    "location_country_str",
    "location_neighborhood_str",
)
OPTIONAL_FIELDS = ("reportingPhoneNumber", "confirmationRequired")
# Every field a record may have: the required ones, then the optional ones.
ALL_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
