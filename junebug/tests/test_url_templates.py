"""Callback URL templates: parsing, checking and filling (junebug.http.url_templates)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from junebug.errors import ApiUsageError
from junebug.http import url_templates
from junebug.http.url_templates import (
    check_event_url,
    check_mo_url,
    event_values,
    has_variables,
    mo_values,
    render,
)
from junebug.messages import ack, delivery_report, nack, user_message

TIMESTAMP = "2026-12-02 06:48:40.123456"


def _mo(content: str | None = "hello big world out there") -> dict[str, object]:
    msg = user_message(
        to_addr="0027800",
        from_addr="002781",
        content=content,
        transport_name="chan",
    )
    msg["message_id"] = "mid 1"
    msg["timestamp"] = TIMESTAMP
    return mo_values(msg, "chan")


RECORD = {"to": "+27 81", "from": "0012", "content": "hi"}


def _event(event: dict[str, object]) -> dict[str, object]:
    event["timestamp"] = TIMESTAMP
    event["event_id"] = "ev1"
    return event_values(event, RECORD, "chan")


class FastPathTests(SynchronousTestCase):
    def test_plain_urls_are_returned_unchanged(self) -> None:
        """A URL without variables is the same object: nothing parsed or built."""
        for url in (
            "http://example.com/mo",
            "http://example.com/a%20b?q=%2F%41%d9%Ab",
            "http://example.com/100%",
            "http://example.com/?x=%-&y=%2",
            "http://example.com/?x=%%",
            "http://example.com/?x={{y}}",
        ):
            self.assertFalse(has_variables(url), url)
            self.assertIs(render(url, {}), url)

    def test_plain_urls_pass_the_checks(self) -> None:
        """Percent-encoded octets (even %d9, %Ab, %bc) are no escapes."""
        for url in (
            "http://example.com/a%20b?q=%2F%41%d9%Ab%bc%FF",
            "http://example.com/?x=%-&y=%2&z=%",
        ):
            check_mo_url("mo_url", url)
            check_event_url("event_url", url)

    def test_templates_have_variables(self) -> None:
        self.assertTrue(has_variables("http://x/?d=%d"))
        self.assertTrue(has_variables("http://x/{message_id}"))


class KannelEscapeTests(SynchronousTestCase):
    def test_each_mo_escape(self) -> None:
        """%I %i %p %P %q %Q %t %T %b %k %s %r %a for an MO message."""
        values = _mo()
        cases = {
            "%I": "mid%201",
            "%i": "chan",
            "%p": "002781",
            "%P": "0027800",
            "%q": "%2B2781",
            "%Q": "%2B27800",
            "%t": "2026-12-02%2006%3A48",
            "%T": "1796194120",
            "%b": "hello%20big%20world%20out%20there",
            "%k": "hello",
            "%a": "hello%20big%20world%20out%20there",
            "%r": "big%20world%20out%20there",
        }
        for escape, expected in cases.items():
            self.assertEqual(
                render(f"http://x/?v={escape}&z", values),
                f"http://x/?v={expected}&z",
                escape,
            )

    def test_next_word_moves_on(self) -> None:
        """Each %s is the next word after the keyword; %r is what is left."""
        self.assertEqual(
            render("http://x/%k/%s/%s?rest=%r", _mo()),
            "http://x/hello/big/world?rest=out%20there",
        )
        self.assertEqual(
            render("http://x/%s/%s/%s/%s/%s=", _mo("a b")), "http://x/b////="
        )

    def test_each_event_escape(self) -> None:
        """%d, %A and the common escapes for events."""
        report = _event(delivery_report("m1", "delivered", "chan"))
        self.assertEqual(
            render("http://x/?d=%d&I=%I&p=%p&P=%P&q=%q&T=%T", report),
            "http://x/?d=1&I=m1&p=0012&P=%2B27%2081&q=%2B12&T=1796194120",
        )
        rejected = _event(nack("m1", "no credit", "chan"))
        self.assertEqual(
            render("http://x/?d=%d&A=%A", rejected), "http://x/?d=16&A=no%20credit"
        )

    def test_dlr_types(self) -> None:
        """ack 8, nack 16, delivered 1, failed 2, pending 4."""
        events = {
            "8": ack("m1", "smsc-9", "chan"),
            "16": nack("m1", "r", "chan"),
            "1": delivery_report("m1", "delivered", "chan"),
            "2": delivery_report("m1", "failed", "chan"),
            "4": delivery_report("m1", "pending", "chan"),
        }
        for expected, event in events.items():
            self.assertEqual(render("%d", _event(event)), expected)

    def test_smpp_state_is_the_dlr_text(self) -> None:
        """%A of an SMPP delivery report is the receipt's stat (DELIVRD...)."""
        report = delivery_report("m1", "delivered", "chan")
        report["transport_metadata"] = {"smpp_delivery_status": "DELIVRD"}
        self.assertEqual(render("%A", _event(report)), "DELIVRD")

    def test_percent_rules(self) -> None:
        """Octets stay, %% is one %, a hex pair wins over an escape letter."""
        values = _event(delivery_report("m1", "delivered", "chan"))
        self.assertEqual(
            render("http://x/a%20b?d=%d&e=%d1&f=%%d&g=%%&h=%", values),
            "http://x/a%20b?d=1&e=%d1&f=%d&g=%&h=%",
        )
        self.assertEqual(render("http://x/{dlr_type}1", values), "http://x/11")

    def test_unknown_escapes_pass_through_when_rendering(self) -> None:
        """A URL that never went through the API keeps unknown escapes, as Kannel."""
        values = _event(ack("m1", "s", "chan"))
        self.assertEqual(
            render("http://x/?a=%x&b=%G&c=%d", values), "http://x/?a=%x&b=%G&c=8"
        )

    def test_failure_code_is_the_smscs_error(self) -> None:
        """%F: a receipt's err: field, a refused submit_sm's command status,
        nothing for an event without either."""
        report = delivery_report("m1", "failed", "chan")
        report["transport_metadata"] = {
            "smpp_delivery_status": "UNDELIV",
            "smpp_error": "034",
        }
        refused = nack("m1", "ESME_RTHROTTLED", "chan")
        refused["transport_metadata"] = {"smpp_command_status": 0x58}
        url = "http://x/?f=%F&a=%A"
        self.assertEqual(render(url, _event(report)), "http://x/?f=034&a=UNDELIV")
        self.assertEqual(
            render(url, _event(refused)), "http://x/?f=88&a=ESME_RTHROTTLED"
        )
        self.assertEqual(
            render(url, _event(ack("m1", "s", "chan"))), "http://x/?f=&a="
        )


class BraceTests(SynchronousTestCase):
    def test_each_name(self) -> None:
        """Every {name} of event URLs, URL-encoded."""
        event = _event(ack("m/1", "smsc 9", "chan"))
        url = (
            "http://x/{channel_id}/{message_id}?e={event_id}&t={event_type}"
            "&s={delivery_status}&smsc={smsc_id}&d={dlr_type}&to={to}&from={from}"
            "&ts={timestamp}&time={time}&ti={to_intl}&fi={from_intl}&r={reason}"
        )
        self.assertEqual(
            render(url, event),
            "http://x/chan/m%2F1?e=ev1&t=submitted&s=&smsc=smsc%209&d=8"
            "&to=%2B27%2081&from=0012&ts=1796194120&time=2026-12-02%2006%3A48"
            "&ti=%2B27%2081&fi=%2B12&r=",
        )

    def test_mo_names(self) -> None:
        url = "http://x/?c={content}&k={keyword}&n={next_word}&r={rest_words}&w={words}"
        self.assertEqual(
            render(url, _mo("  Über  a&b  c ")),
            "http://x/?c=%20%20%C3%9Cber%20%20a%26b%20%20c%20&k=%C3%9Cber&n=a%26b"
            "&r=c&w=%C3%9Cber%20a%26b%20c",
        )

    def test_literal_braces(self) -> None:
        self.assertEqual(render("http://x/{{{to}}}", _mo()), "http://x/{0027800}")

    def test_missing_values_are_empty(self) -> None:
        """A message without content or timestamp fills those with nothing."""
        msg = user_message(to_addr="1", from_addr="2", content=None, transport_name="c")
        msg["timestamp"] = None
        self.assertEqual(
            render("http://x/?c={content}&t=%T&k=%k", mo_values(msg, "c")),
            "http://x/?c=&t=&k=",
        )


class CheckTests(SynchronousTestCase):
    def assertRefused(self, check: object, url: str, fragment: str) -> None:
        with self.assertRaises(ApiUsageError) as caught:
            check("mo_url", url)  # type: ignore[operator]
        self.assertIn(fragment, str(caught.exception))
        self.assertIn('"mo_url"', str(caught.exception))

    def test_unknown_name(self) -> None:
        self.assertRefused(check_mo_url, "http://x/{nope}", "unknown variable {nope}")
        self.assertRefused(check_mo_url, "http://x/{}", "unknown variable {}")

    def test_unbalanced_brace(self) -> None:
        self.assertRefused(check_mo_url, "http://x/{to", "unbalanced brace")
        self.assertRefused(check_mo_url, "http://x/to}", "unbalanced brace")

    def test_unknown_letter(self) -> None:
        self.assertRefused(check_mo_url, "http://x/?a=%x", "%x is not a URL template")
        self.assertRefused(check_mo_url, "http://x/?a=%G1", "%G is not a URL template")

    def test_kannel_letter_without_data(self) -> None:
        self.assertRefused(check_mo_url, "http://x/?a=%c&", "%c is not supported")
        self.assertRefused(
            check_mo_url, "http://x/?a=%F&", "%F ({failure_code}) has no value"
        )
        self.assertRefused(check_mo_url, "http://x/?a=%S", "%S is not supported")
        self.assertRefused(check_mo_url, "http://x/?a=%n", "%n is not supported")

    def test_variables_of_the_other_kind(self) -> None:
        """Event variables are refused in mo_url and MO ones in event_url."""
        self.assertRefused(
            check_mo_url, "http://x/?d=%d&", "%d ({dlr_type}) has no value"
        )
        self.assertRefused(check_mo_url, "http://x/{event_type}", "unknown variable")
        with self.assertRaises(ApiUsageError):
            check_event_url("event_url", "http://x/?b=%b")
        with self.assertRaises(ApiUsageError):
            check_event_url("event_url", "http://x/{content}")

    def test_good_templates(self) -> None:
        check_mo_url("mo_url", "http://x/%i/%I?p=%p&P=%P&b=%b&k=%k&s=%s&r=%r&a=%a")
        check_mo_url("mo_url", "http://x/{{literal}}/{content}/%%")
        check_event_url("event_url", "http://x/?d=%d&I=%I&A=%A&t=%t&T=%T&q=%q&Q=%Q")
        for name in sorted(url_templates.EVENT_VARIABLES):
            check_event_url("event_url", f"http://x/{{{name}}}")
        for name in sorted(url_templates.MO_VARIABLES):
            check_mo_url("mo_url", f"http://x/{{{name}}}")

    def test_no_variables_in_the_host(self) -> None:
        """A message must not choose where it is sent: scheme, host and port
        are fixed; the path, query and fragment may be templated."""
        for url in (
            "http://%b/",
            "http://{to}.example.com/x",
            "http://example.com:%T/",
            "http://u:{from}@example.com/",
            "%i://example.com/",
        ):
            self.assertRefused(check_mo_url, url, "not in the scheme, host or port")
        check_mo_url("mo_url", "http://example.com?{from}")
        check_mo_url("mo_url", "http://example.com/%i#{from}")

    def test_non_strings_are_left_to_the_schema(self) -> None:
        check_mo_url("mo_url", None)
        check_event_url("event_url", 5)

    def test_every_letter_is_documented_once(self) -> None:
        """A letter is either filled or refused with a reason, never both."""
        self.assertFalse(
            set(url_templates.KANNEL_LETTERS) & set(url_templates.UNSUPPORTED_LETTERS)
        )
        self.assertTrue(
            set(url_templates.KANNEL_LETTERS.values())
            <= url_templates.MO_VARIABLES | url_templates.EVENT_VARIABLES
        )
