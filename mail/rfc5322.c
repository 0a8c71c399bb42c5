/* rfc5322.c: a streaming look at a message's header section (RFC 5322
   section 2.2): lines of "name:" fields (name octets 33-126 but ':', blanks
   allowed before the colon as the obsolete syntax has it) and their
   continuation lines, up to an empty line. The first line that is neither
   ends the look: the message then has no header section that a delivery
   can keep as the record's headers. */
#include "mail/rfc5322.h"

#include <string.h>

enum { LINE_START, NAME, NAME_BLANKS, VALUE };

void msg_scan_init(struct msg_scan *m, msg_scan_out out, void *ctx)
{
	m->state = LINE_START;
	m->in_header = 1;
	m->fields = 0;
	m->has_date = m->has_message_id = m->has_from = m->has_key = 0;
	m->pos = 0;
	m->body_start = 0;
	m->name_len = 0;
	m->out = out;
	m->ctx = ctx;
}

static int name_is(const struct msg_scan *m, const char *name)
{
	size_t len = strlen(name);

	return m->name_len == len && memcmp(m->name, name, len) == 0;
}

/* The colon after a field name. */
static void field_done(struct msg_scan *m)
{
	m->fields++;
	m->has_date |= name_is(m, "date");
	m->has_message_id |= name_is(m, "message-id");
	m->has_from |= name_is(m, "from");
	m->has_key |= name_is(m, "from") || name_is(m, "to") || name_is(m, "subject") ||
		      name_is(m, "date") || name_is(m, "message-id") || name_is(m, "mime-version");
	m->state = VALUE;
}

static void name_octet(struct msg_scan *m, char c)
{
	if (c == ':' && m->name_len > 0) {
		field_done(m);
	} else if ((c == ' ' || c == '\t') && m->name_len > 0) {
		m->state = NAME_BLANKS;
	} else if (c > ' ' && c < 127 && c != ':') {
		if (m->name_len < sizeof m->name)
			m->name[m->name_len] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		m->name_len++;
	} else {
		m->in_header = 0;
	}
}

static void line_start(struct msg_scan *m, char c)
{
	if (c == '\n') {
		m->body_start = m->pos + 1;	/* the empty line: the section ends */
		m->in_header = 0;
	} else if (c == ' ' || c == '\t') {
		m->in_header = m->fields > 0;	/* a continuation needs a field */
		m->state = VALUE;
	} else {
		m->name_len = 0;
		m->state = NAME;
		name_octet(m, c);
	}
}

static void scan_octet(struct msg_scan *m, char c)
{
	switch (m->state) {
	case LINE_START:
		line_start(m, c);
		break;
	case NAME:
		name_octet(m, c);
		break;
	case NAME_BLANKS:
		if (c == ':')
			field_done(m);
		else if (c != ' ' && c != '\t')
			m->in_header = 0;
		break;
	default:
		if (c == '\n')
			m->state = LINE_START;
	}
	m->pos++;
}

void msg_scan_feed(struct msg_scan *m, const char *data, size_t len)
{
	for (size_t i = 0; i < len && m->in_header; i++)
		scan_octet(m, data[i]);
	if (len > 0)
		m->out(m->ctx, data, len);
}

void msg_scan_sink(void *scan, const char *data, size_t len)
{
	msg_scan_feed(scan, data, len);
}

int rfc5322_headed(const struct msg_scan *m)
{
	return m->body_start > 0 && m->fields > 0 && m->has_key;
}
