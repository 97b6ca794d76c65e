"""Notifications' HTTP bodies and answers. Addresses are checked with maintained validators."""

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from services.common.fields import Card, Flag, Id, Int

PATH_IDS = {"card": Card(), "delivery_id": Id(36)}


class ContactSchema(Schema):
    email = fields.String(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True,
                          metadata={"description": "a French mobile number, stored as E.164"})
    preferred_channel = fields.String(load_default="email", validate=validate.OneOf(("email", "sms")))
    language = fields.String(load_default="fr", validate=validate.OneOf(("fr", "en")))
    sms_consent = Flag(load_default=False)

    @post_load
    def normalise(self, data: dict, **kwargs) -> dict:
        if data.get("email"):
            try:
                # No DNS look-up: a library's patrons are not to be refused because a resolver is down.
                data["email"] = validate_email(data["email"], check_deliverability=False).normalized
            except EmailNotValidError as exc:
                raise ValidationError(str(exc), field_name="email") from exc
        if data.get("phone"):
            data["phone"] = french_mobile(data["phone"])
        return data

    @validates_schema
    def reachable(self, data: dict, **kwargs) -> None:
        if not data.get("email") and not data.get("phone"):
            raise ValidationError("give an e-mail address or a mobile phone number", field_name="email")
        problems = {}
        if data.get("preferred_channel") == "sms" and not data.get("phone"):
            problems["phone"] = ["SMS needs a mobile phone number"]
        if data.get("preferred_channel") == "sms" and not data.get("sms_consent"):
            # Accepting it would leave the patron told nothing by SMS (no consent) while they expect SMS.
            problems["sms_consent"] = ["SMS as preferred channel needs the patron's consent (sms_consent: true)"]
        if problems:
            raise ValidationError(problems)


def french_mobile(raw: str) -> str:
    try:
        number = phonenumbers.parse(raw, "FR")
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"not a phone number: {exc}", field_name="phone") from exc
    mobile = phonenumbers.number_type(number) in (phonenumbers.PhoneNumberType.MOBILE,)
    if not phonenumbers.is_valid_number(number) or number.country_code != 33 or not mobile:
        raise ValidationError("not a valid French mobile number (06 or 07)", field_name="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class ContactRecordSchema(ContactSchema):
    card = fields.String()
    updated_at = fields.DateTime()


class DeliverySchema(Schema):
    id = fields.String()
    event_id = fields.String()
    event_type = fields.String()
    patron = fields.String()
    channel = fields.String()
    status = fields.String()
    recipient = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    body = fields.String(allow_none=True)
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class DeliveryQuerySchema(Schema):
    patron = fields.String(load_default=None)
    event = fields.String(load_default=None)
    status = fields.String(load_default=None, validate=validate.OneOf(
        ("pending", "sending", "sent", "failed", "obsolete", "suppressed")))
    limit = Int(1, 1000, text=True, load_default=100)
