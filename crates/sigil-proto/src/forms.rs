//! XEP-0004 data forms (`jabber:x:data`): the forms ad-hoc commands
//! (XEP-0050) ask with, and the answers they complete with.
//!
//! A [`DataForm`] has a [`FormType`] (form, submit, cancel, result), an
//! optional title and instructions, and [`Field`]s, each with a `var`, a
//! [`FieldType`], a label, a description, whether it is required, its
//! values and, for lists, its [`FieldOption`]s. Reading is bounded: at
//! most [`MAX_FIELDS`] fields a form, [`MAX_VALUES`] values and as many
//! options a field, [`MAX_VALUE_BYTES`] bytes a value; beyond, the form
//! does not read ([`ParseError::Invalid`]). Tables (`<reported/>` and
//! `<item/>`) are written ([`DataForm::reported`], [`DataForm::items`])
//! and read back within the same caps.

use sigil_xml::Element;

use crate::error::ParseError;
use crate::payload::expect;

/// The XEP-0004 namespace.
pub const NS: &str = "jabber:x:data";

/// The most fields a form reads (in all, table rows included).
pub const MAX_FIELDS: usize = 256;

/// The most values (and the most options) a field reads.
pub const MAX_VALUES: usize = 256;

/// The longest value a field reads, in bytes (of its text).
pub const MAX_VALUE_BYTES: usize = 4096;

/// The hidden field that names what kind of form this is (XEP-0068).
pub const FORM_TYPE: &str = "FORM_TYPE";

/// What a form is for (XEP-0004 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormType {
    /// The requester gave up on the form.
    Cancel,
    /// A form to fill in.
    Form,
    /// The results of a query or command.
    Result,
    /// A filled-in form.
    Submit,
}

impl FormType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Form => "form",
            Self::Result => "result",
            Self::Submit => "submit",
        }
    }

    /// The type with this attribute value.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "cancel" => Self::Cancel,
            "form" => Self::Form,
            "result" => Self::Result,
            "submit" => Self::Submit,
            _ => return None,
        })
    }
}

/// The type of a field (XEP-0004 §3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldType {
    /// Yes or no (`0`, `1`, `false`, `true`).
    Boolean,
    /// Text shown, not asked for.
    Fixed,
    /// Not shown; sent back as it is (such as `FORM_TYPE`).
    Hidden,
    /// Several JIDs.
    JidMulti,
    /// One JID.
    JidSingle,
    /// Some of the options.
    ListMulti,
    /// One of the options.
    ListSingle,
    /// Several lines of text, one value each.
    TextMulti,
    /// A secret, such as a password.
    TextPrivate,
    /// One line of text: the default, and what unknown types read as.
    #[default]
    TextSingle,
}

impl FieldType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Fixed => "fixed",
            Self::Hidden => "hidden",
            Self::JidMulti => "jid-multi",
            Self::JidSingle => "jid-single",
            Self::ListMulti => "list-multi",
            Self::ListSingle => "list-single",
            Self::TextMulti => "text-multi",
            Self::TextPrivate => "text-private",
            Self::TextSingle => "text-single",
        }
    }

    /// The type with this attribute value; an unknown one is
    /// `text-single` (XEP-0004 §3.3).
    pub fn from_name(name: &str) -> Self {
        match name {
            "boolean" => Self::Boolean,
            "fixed" => Self::Fixed,
            "hidden" => Self::Hidden,
            "jid-multi" => Self::JidMulti,
            "jid-single" => Self::JidSingle,
            "list-multi" => Self::ListMulti,
            "list-single" => Self::ListSingle,
            "text-multi" => Self::TextMulti,
            "text-private" => Self::TextPrivate,
            _ => Self::TextSingle,
        }
    }
}

/// One `<option/>` of a list field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldOption {
    /// What is shown.
    pub label: Option<String>,
    /// What is sent back when chosen.
    pub value: String,
}

/// One `<field/>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Field {
    /// Its name (every field but `fixed` ones has one).
    pub var: Option<String>,
    /// Its type: `None` when the element had no `type` (allowed in
    /// submitted and result forms; a form's untyped field is
    /// `text-single`, [`Field::kind`]).
    pub field_type: Option<FieldType>,
    /// What is shown beside it.
    pub label: Option<String>,
    /// A longer description (`<desc/>`).
    pub desc: Option<String>,
    /// Whether it must be filled in (`<required/>`).
    pub required: bool,
    /// Its values, in order.
    pub values: Vec<String>,
    /// What a list field offers.
    pub options: Vec<FieldOption>,
}

impl Field {
    /// A field of this name and type.
    pub fn new(var: &str, field_type: FieldType) -> Self {
        Self {
            var: Some(var.to_owned()),
            field_type: Some(field_type),
            ..Self::default()
        }
    }

    /// The hidden `FORM_TYPE` field naming `namespace`.
    pub fn form_type(namespace: &str) -> Self {
        Self::new(FORM_TYPE, FieldType::Hidden).value(namespace)
    }

    /// Builder: sets the label.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Builder: sets the description.
    #[must_use]
    pub fn desc(mut self, desc: impl Into<String>) -> Self {
        self.desc = Some(desc.into());
        self
    }

    /// Builder: marks it required.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Builder: adds a value.
    #[must_use]
    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.values.push(value.into());
        self
    }

    /// Builder: adds an option.
    #[must_use]
    pub fn option(mut self, label: Option<String>, value: impl Into<String>) -> Self {
        self.options.push(FieldOption {
            label,
            value: value.into(),
        });
        self
    }

    /// Its type, `text-single` when the element had none.
    pub fn kind(&self) -> FieldType {
        self.field_type.unwrap_or_default()
    }

    /// Reads a `<field/>` within the caps.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "field", NS)?;
        let mut field = Self {
            var: element.attribute("var").map(str::to_owned),
            field_type: element.attribute("type").map(FieldType::from_name),
            label: element.attribute("label").map(str::to_owned),
            desc: element.child("desc", NS).map(Element::text),
            required: element.has_child("required", NS),
            ..Self::default()
        };
        for child in element.children().filter(|c| c.namespace() == NS) {
            match child.name() {
                "value" => {
                    if field.values.len() == MAX_VALUES {
                        return Err(ParseError::Invalid("too many values in a field"));
                    }
                    field.values.push(bounded(child.text())?);
                }
                "option" => {
                    if field.options.len() == MAX_VALUES {
                        return Err(ParseError::Invalid("too many options in a field"));
                    }
                    let value = child
                        .child("value", NS)
                        .map(Element::text)
                        .ok_or(ParseError::MissingChild("value"))?;
                    field.options.push(FieldOption {
                        label: child.attribute("label").map(str::to_owned),
                        value: bounded(value)?,
                    });
                }
                _ => {}
            }
        }
        if field.var.is_none() && field.field_type != Some(FieldType::Fixed) {
            return Err(ParseError::MissingAttribute("var"));
        }
        Ok(field)
    }

    /// The `<field/>` element.
    pub fn to_element(&self) -> Element {
        let mut element = Element::new("field", NS);
        if let Some(var) = &self.var {
            element.set_attribute("var", var.clone());
        }
        if let Some(field_type) = self.field_type {
            element.set_attribute("type", field_type.as_str());
        }
        if let Some(label) = &self.label {
            element.set_attribute("label", label.clone());
        }
        if let Some(desc) = &self.desc {
            element.push_child(Element::new("desc", NS).with_text(desc.clone()));
        }
        if self.required {
            element.push_child(Element::new("required", NS));
        }
        for value in &self.values {
            element.push_child(Element::new("value", NS).with_text(value.clone()));
        }
        for option in &self.options {
            let mut child = Element::new("option", NS)
                .with_child(Element::new("value", NS).with_text(option.value.clone()));
            if let Some(label) = &option.label {
                child.set_attribute("label", label.clone());
            }
            element.push_child(child);
        }
        element
    }
}

/// An `<x xmlns='jabber:x:data'/>` form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataForm {
    /// What it is for.
    pub form_type: FormType,
    /// Its title.
    pub title: Option<String>,
    /// Its instructions (one `<instructions/>` a line).
    pub instructions: Option<String>,
    /// Its fields, in order.
    pub fields: Vec<Field>,
    /// The columns of a table (`<reported/>`), empty for none.
    pub reported: Vec<Field>,
    /// The rows of a table (`<item/>`), each its fields.
    pub items: Vec<Vec<Field>>,
}

impl DataForm {
    /// An empty form of this type.
    pub fn new(form_type: FormType) -> Self {
        Self {
            form_type,
            title: None,
            instructions: None,
            fields: Vec::new(),
            reported: Vec::new(),
            items: Vec::new(),
        }
    }

    /// A form of this type whose first field is the hidden `FORM_TYPE`.
    pub fn typed(form_type: FormType, namespace: &str) -> Self {
        Self::new(form_type).with_field(Field::form_type(namespace))
    }

    /// Builder: sets the title.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Builder: sets the instructions.
    #[must_use]
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = Some(instructions.into());
        self
    }

    /// Builder: adds a field.
    #[must_use]
    pub fn with_field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    /// The field named `var`.
    pub fn field(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var.as_deref() == Some(var))
    }

    /// The value of `FORM_TYPE`, if the form has one.
    pub fn form_type_value(&self) -> Option<&str> {
        self.value(FORM_TYPE)
    }

    /// The first value of the field `var`.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.field(var)?.values.first().map(String::as_str)
    }

    /// Every value of the field `var` (none when there is no such field).
    pub fn values(&self, var: &str) -> &[String] {
        self.field(var).map_or(&[], |f| f.values.as_slice())
    }

    /// The boolean field `var`: `None` when absent or empty,
    /// [`ParseError::Invalid`] when it is not `0`, `1`, `false` or `true`.
    pub fn boolean(&self, var: &str) -> Result<Option<bool>, ParseError> {
        match self.value(var).map(str::trim) {
            None | Some("") => Ok(None),
            Some("1" | "true") => Ok(Some(true)),
            Some("0" | "false") => Ok(Some(false)),
            Some(_) => Err(ParseError::Invalid(
                "a boolean field is 0, 1, false or true",
            )),
        }
    }

    /// Reads an `<x/>` within the caps.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "x", NS)?;
        let form_type = element
            .attribute("type")
            .ok_or(ParseError::MissingAttribute("type"))
            .and_then(|t| {
                FormType::from_name(t).ok_or(ParseError::Invalid("unknown data form type"))
            })?;
        let mut form = Self::new(form_type);
        form.title = element.child("title", NS).map(Element::text);
        let instructions: Vec<String> = element
            .children()
            .filter(|c| c.is("instructions", NS))
            .map(Element::text)
            .collect();
        if !instructions.is_empty() {
            form.instructions = Some(instructions.join("\n"));
        }
        let mut count = 0usize;
        let mut read = |parent: &Element| -> Result<Vec<Field>, ParseError> {
            let mut fields = Vec::new();
            for child in parent.children().filter(|c| c.is("field", NS)) {
                count += 1;
                if count > MAX_FIELDS {
                    return Err(ParseError::Invalid("too many fields in a form"));
                }
                fields.push(Field::from_element(child)?);
            }
            Ok(fields)
        };
        form.fields = read(element)?;
        if let Some(reported) = element.child("reported", NS) {
            form.reported = read(reported)?;
        }
        for item in element.children().filter(|c| c.is("item", NS)) {
            form.items.push(read(item)?);
        }
        Ok(form)
    }

    /// The `<x/>` element.
    pub fn to_element(&self) -> Element {
        let mut element = Element::new("x", NS).with_attribute("type", self.form_type.as_str());
        if let Some(title) = &self.title {
            element.push_child(Element::new("title", NS).with_text(title.clone()));
        }
        if let Some(instructions) = &self.instructions {
            for line in instructions.lines() {
                element.push_child(Element::new("instructions", NS).with_text(line));
            }
        }
        for field in &self.fields {
            element.push_child(field.to_element());
        }
        if !self.reported.is_empty() {
            let mut reported = Element::new("reported", NS);
            for field in &self.reported {
                reported.push_child(field.to_element());
            }
            element.push_child(reported);
        }
        for item in &self.items {
            let mut row = Element::new("item", NS);
            for field in item {
                row.push_child(field.to_element());
            }
            element.push_child(row);
        }
        element
    }
}

crate::payload::conversions!(DataForm, Field);

fn bounded(value: String) -> Result<String, ParseError> {
    match value.len() > MAX_VALUE_BYTES {
        true => Err(ParseError::Invalid("a field value is too long")),
        false => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> DataForm {
        DataForm::from_element(&Element::parse(xml).unwrap()).unwrap()
    }

    /// XEP-0050 §2.4.2's second stage, as the digest quotes it.
    #[test]
    fn the_xep_0050_list_form_reads() {
        let form = parse(
            "<x xmlns='jabber:x:data' type='form'>
              <title>Configure Service</title>
              <instructions>
                Please select the run modes and state for 'httpd'.
              </instructions>
              <field var='runlevel' label='Run Modes' type='list-multi'>
                <value>3</value>
                <value>5</value>
                <option label='Single-User'><value>1</value></option>
                <option label='Non-Networked Multi-User'><value>2</value></option>
                <option label='Full Multi-User'><value>3</value></option>
                <option label='X-Window'><value>5</value></option>
              </field>
              <field var='state' label='Run State' type='list-single'>
                <value>off</value>
                <option label='Active'><value>off</value></option>
                <option label='Inactive'><value>on</value></option>
              </field>
            </x>",
        );
        assert_eq!(form.form_type, FormType::Form);
        assert_eq!(form.title.as_deref(), Some("Configure Service"));
        assert!(form.instructions.as_deref().unwrap().contains("'httpd'"));
        let runlevel = form.field("runlevel").unwrap();
        assert_eq!(runlevel.kind(), FieldType::ListMulti);
        assert_eq!(runlevel.values, ["3", "5"]);
        assert_eq!(runlevel.options.len(), 4);
        assert_eq!(runlevel.options[3].label.as_deref(), Some("X-Window"));
        assert_eq!(form.value("state"), Some("off"));
        assert_eq!(form.field("state").unwrap().options[1].value, "on");
    }

    /// XEP-0133 §4.1's add-user form and its submission.
    #[test]
    fn the_xep_0133_add_user_form_reads_and_is_written_back() {
        let form = parse(
            "<x xmlns='jabber:x:data' type='form'>
              <title>Adding a User</title>
              <instructions>Fill out this form to add a user.</instructions>
              <field type='hidden' var='FORM_TYPE'>
                <value>http://jabber.org/protocol/admin</value>
              </field>
              <field label='The Jabber ID for the account to be added'
                     type='jid-single' var='accountjid'>
                <required/>
              </field>
              <field label='The password for this account' type='text-private' var='password'/>
              <field label='Retype password' type='text-private' var='password-verify'/>
              <field label='Email address' type='text-single' var='email'/>
              <field label='Given name' type='text-single' var='given_name'/>
              <field label='Family name' type='text-single' var='surname'/>
            </x>",
        );
        assert_eq!(
            form.form_type_value(),
            Some("http://jabber.org/protocol/admin")
        );
        let account = form.field("accountjid").unwrap();
        assert!(account.required);
        assert_eq!(account.kind(), FieldType::JidSingle);
        assert_eq!(form.fields.len(), 7);
        assert_eq!(DataForm::from_element(&form.to_element()).unwrap(), form);

        let submit = parse(
            "<x xmlns='jabber:x:data' type='submit'>
              <field var='accountjids'><value>juliet@shakespeare.lit</value></field>
            </x>",
        );
        assert_eq!(submit.form_type, FormType::Submit);
        assert_eq!(submit.values("accountjids"), ["juliet@shakespeare.lit"]);
        assert_eq!(submit.field("accountjids").unwrap().field_type, None);
        assert!(submit.values("nothing").is_empty());
    }

    #[test]
    fn booleans_unknown_types_and_tables() {
        let form = parse(
            "<x xmlns='jabber:x:data' type='submit'>
              <field var='a'><value>1</value></field>
              <field var='b'><value>false</value></field>
              <field var='c'><value>maybe</value></field>
              <field var='d' type='something-new'/>
              <field type='fixed'><value>shown</value></field>
            </x>",
        );
        assert_eq!(form.boolean("a"), Ok(Some(true)));
        assert_eq!(form.boolean("b"), Ok(Some(false)));
        assert!(form.boolean("c").is_err());
        assert_eq!(form.boolean("z"), Ok(None));
        assert_eq!(form.field("d").unwrap().kind(), FieldType::TextSingle);
        assert_eq!(form.fields[4].var, None);

        let mut table = DataForm::new(FormType::Result).title("Devices");
        table.reported = vec![Field::new("name", FieldType::TextSingle).label("Name")];
        table.items = vec![
            vec![Field::new("name", FieldType::TextSingle).value("phone")],
            vec![Field::new("name", FieldType::TextSingle).value("laptop")],
        ];
        let read = DataForm::from_element(&table.to_element()).unwrap();
        assert_eq!(read, table);
    }

    #[test]
    fn what_breaks_the_caps_or_the_rules_does_not_read() {
        let element = |xml: &str| Element::parse(xml).unwrap();
        assert_eq!(
            DataForm::from_element(&element("<x xmlns='jabber:x:data'/>")),
            Err(ParseError::MissingAttribute("type"))
        );
        assert!(DataForm::from_element(&element("<x xmlns='jabber:x:data' type='odd'/>")).is_err());
        assert_eq!(
            DataForm::from_element(&element(
                "<x xmlns='jabber:x:data' type='submit'><field type='text-single'/></x>"
            )),
            Err(ParseError::MissingAttribute("var"))
        );
        let mut many = DataForm::new(FormType::Submit);
        for i in 0..=MAX_FIELDS {
            many.fields
                .push(Field::new(&format!("f{i}"), FieldType::TextSingle));
        }
        assert!(DataForm::from_element(&many.to_element()).is_err());
        many.fields.truncate(MAX_FIELDS);
        assert!(DataForm::from_element(&many.to_element()).is_ok());
        let mut values = Field::new("v", FieldType::TextMulti);
        values.values = vec![String::new(); MAX_VALUES + 1];
        assert!(Field::from_element(&values.to_element()).is_err());
        let long = Field::new("v", FieldType::TextSingle).value("x".repeat(MAX_VALUE_BYTES + 1));
        assert!(Field::from_element(&long.to_element()).is_err());
    }
}
