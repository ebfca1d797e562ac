//! [`Timestamp`]: an instant stored so that it sorts, on either backend.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};

/// An instant bound to or read from a column that is compared and grouped in SQL
/// (`usage.created_at`).
///
/// SQLite keeps timestamps as text, so this writes them fixed-width (milliseconds,
/// `Z`): text order is then time order, and the first ten characters are the UTC day.
/// (sqlx's own `DateTime` encoding drops trailing zero fractions, so its strings are not
/// all one width.) PostgreSQL keeps a `TIMESTAMPTZ` as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// The fixed-width text form SQLite stores.
    pub fn text(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// Serialised in the fixed-width text form, whichever backend it came from.
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Timestamp {
        Timestamp(at)
    }
}

impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <DateTime<Utc> as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Timestamp {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Timestamp, BoxDynError> {
        <DateTime<Utc> as Decode<'r, Sqlite>>::decode(value).map(Timestamp)
    }
}

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl<'q> Encode<'q, Postgres> for Timestamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Timestamp, BoxDynError> {
        <DateTime<Utc> as Decode<'r, Postgres>>::decode(value).map(Timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_is_fixed_width_and_sorts_as_time() {
        let whole: DateTime<Utc> = "2026-12-02T10:00:00Z".parse().unwrap();
        let later: DateTime<Utc> = "2026-12-02T10:00:00.5Z".parse().unwrap();
        assert_eq!(Timestamp(whole).text(), "2026-12-02T10:00:00.000Z");
        assert_eq!(Timestamp(later).text(), "2026-12-02T10:00:00.500Z");
        assert!(Timestamp(whole).text() < Timestamp(later).text());
    }
}
