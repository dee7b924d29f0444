// Test SMSC on the npm 'smpp' package (node-smpp 0.5.1).  Adapted from
// shared/peers/node_smpp_smsc.js: same modes and answers, and it prints one
// "SUBMIT {json}" line per submit_sm so that tests can check what arrived.
//
// env: PORT, MODE = dlr | ack-only | throttle-every-3 | qfull-every-3,
//      SMSC_USER / SMSC_PASS (default esme1 / secret), QUIET (no per-PDU
//      lines), MO_COUNT (opt-in: after each bind that can receive, send that
//      many deliver_sm with unique texts "bench MO <i> <send time>" as fast as the session
//      allows, at most MO_WINDOW (default 50) unanswered; a refused one is
//      sent again; then print one "MO_DONE {json}" line)
//
// Bind, unbind and the close of a bound session print a line ending in
// "t=<seconds on CLOCK_MONOTONIC>".
//
// Delivery receipts are store-and-forward, as at a real SMSC: a receipt stays
// pending until a deliver_sm_resp with status 0 answers it.  One refused is
// sent again a second later; one whose session closed unanswered (the ESME
// crashed or was cut off) is sent again on the next bind that can receive.
const smpp = require('smpp');
const PORT = parseInt(process.env.PORT || '2776', 10);
const MODE = process.env.MODE || 'dlr';
const USER = process.env.SMSC_USER || 'esme1', PASS = process.env.SMSC_PASS || 'secret';
let nextId = 1, n = 0;
const RETRY_MS = 1000;
// Receipts not yet answered with status 0, by SMSC message id, in order.
const pendingReceipts = new Map();
const receivers = new Set();

function sendReceipt(session, mid) {
  const receipt = pendingReceipts.get(mid);
  if (!receipt || receipt.inFlight === session) return;
  receipt.inFlight = session;
  session.deliver_sm(Object.assign({}, receipt.pdu), (r) => {
    if (receipt.inFlight === session) receipt.inFlight = null;
    if (!process.env.QUIET) console.log(`DLR for ${mid} deliver_sm_resp status=${r.command_status}`);
    if (r.command_status === 0) {
      pendingReceipts.delete(mid);
      return;
    }
    setTimeout(() => {
      if (receivers.has(session)) sendReceipt(session, mid);
    }, RETRY_MS);
  });
}

function resendReceipts(session) {
  for (const [mid, receipt] of pendingReceipts) {
    if (receipt.inFlight === null) sendReceipt(session, mid);
  }
}
const MO_COUNT = parseInt(process.env.MO_COUNT || '0', 10);
const MO_WINDOW = parseInt(process.env.MO_WINDOW || '50', 10);

// Seconds on CLOCK_MONOTONIC, as Python's time.monotonic().
function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

function hex(buffer) {
  return Buffer.isBuffer(buffer) ? buffer.toString('hex') : null;
}

function describe(pdu, status) {
  const sm = pdu.short_message || {};
  const payload = pdu.message_payload;
  return JSON.stringify({
    n: n, t: Number(process.hrtime.bigint()) / 1e9, status: status, source_addr: pdu.source_addr, destination_addr: pdu.destination_addr,
    data_coding: pdu.data_coding, esm_class: pdu.esm_class,
    registered_delivery: pdu.registered_delivery,
    udh: Array.isArray(sm.udh) ? sm.udh.map(hex) : [],
    message: typeof sm.message === 'string' ? sm.message : (hex(sm.message) || ''),
    payload: payload && payload.message !== undefined
      ? (typeof payload.message === 'string' ? payload.message : hex(payload.message)) : null,
    sar: pdu.sar_msg_ref_num !== undefined
      ? [pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum] : null,
    ussd_service_op: pdu.ussd_service_op === undefined ? null : pdu.ussd_service_op,
  });
}

function floodMO(session) {
  // Bench only (MO_COUNT): keep MO_WINDOW deliver_sm outstanding until
  // MO_COUNT were answered with status 0.
  const started = process.hrtime.bigint();
  const retry = [];
  let next = 0, outstanding = 0, ok = 0, refused = 0, stopped = false;
  function pump() {
    while (!stopped && outstanding < MO_WINDOW && (retry.length || next < MO_COUNT)) {
      const i = retry.length ? retry.shift() : next++;
      outstanding++;
      // The send time (CLOCK_MONOTONIC, as Python's time.monotonic()) lets
      // the receiver time each MO.
      const at = (Number(process.hrtime.bigint()) / 1e9).toFixed(6);
      const sent = session.deliver_sm(
        {source_addr: '27820001111', destination_addr: '1234', short_message: `bench MO ${i} ${at}`},
        (r) => {
          outstanding--;
          if (r.command_status === 0) {
            ok++;
          } else {
            refused++;
            retry.push(i);
            setTimeout(pump, 50);
            return;
          }
          if (ok === MO_COUNT) {
            const ended = process.hrtime.bigint();
            console.log('MO_DONE ' + JSON.stringify({
              count: MO_COUNT, ok: ok, refused: refused,
              elapsed_s: Number(ended - started) / 1e9,
              started_s: Number(started) / 1e9, ended_s: Number(ended) / 1e9,
            }));
          } else {
            pump();
          }
        });
      if (!sent) {
        stopped = true;
        console.log(`MO_STOPPED session not writable after ${ok} answered`);
      }
    }
  }
  pump();
}

const server = smpp.createServer({debug: !!process.env.DEBUG}, function (session) {
  let canReceive = false, bound = false;
  function bind(kind) {
    return function (pdu) {
      if (pdu.system_id !== USER || pdu.password !== PASS) {
        session.send(pdu.response({command_status: smpp.ESME_RINVPASWD}));
        console.log(`${kind} rejected for ${pdu.system_id}`);
        session.close();
        return;
      }
      canReceive = kind !== 'bind_transmitter';
      bound = true;
      session.send(pdu.response({system_id: 'NODESMSC'}));
      console.log(`${kind} ok system_id=${pdu.system_id} interface_version=${pdu.interface_version} t=${now()}`);
      if (canReceive) receivers.add(session);
      if (MODE === 'dlr' && canReceive) {
        resendReceipts(session);
        session.deliver_sm({source_addr: '27820001111', destination_addr: '1234', short_message: 'hello MO from node-smpp'},
          (r) => console.log(`MO deliver_sm_resp status=${r.command_status}`));
      }
      if (MO_COUNT > 0 && canReceive) floodMO(session);
    };
  }
  session.on('bind_transceiver', bind('bind_transceiver'));
  session.on('bind_transmitter', bind('bind_transmitter'));
  session.on('bind_receiver', bind('bind_receiver'));
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => { console.log(`unbind t=${now()}`); session.send(pdu.response()); session.close(); });
  session.on('submit_sm', (pdu) => {
    n++;
    if (MODE === 'throttle-every-3' && n % 3 === 0) {
      console.log('SUBMIT ' + describe(pdu, smpp.ESME_RTHROTTLED));
      session.send(pdu.response({command_status: smpp.ESME_RTHROTTLED}));
      return;
    }
    if (MODE === 'qfull-every-3' && n % 3 === 0) {
      console.log('SUBMIT ' + describe(pdu, smpp.ESME_RMSGQFUL));
      session.send(pdu.response({command_status: smpp.ESME_RMSGQFUL}));
      return;
    }
    if (!process.env.QUIET) console.log('SUBMIT ' + describe(pdu, 0));
    const mid = (nextId++).toString(16);
    session.send(pdu.response({message_id: mid}));
    if (MODE === 'dlr' && canReceive && (pdu.registered_delivery & 1)) {
      const d = new Date().toISOString().replace(/[-T:]/g, '').slice(2, 12);
      const body = pdu.short_message && pdu.short_message.message !== undefined ? String(pdu.short_message.message) : '';
      pendingReceipts.set(mid, {
        inFlight: null,
        pdu: {
          source_addr: pdu.destination_addr, destination_addr: pdu.source_addr, esm_class: 0x04,
          short_message: `id:${mid} sub:001 dlvrd:001 submit date:${d} done date:${d} stat:DELIVRD err:000 text:${body.slice(0, 20)}`,
          receipted_message_id: mid, message_state: 2,
        },
      });
      sendReceipt(session, mid);
    }
  });
  session.on('close', () => {
    if (bound) console.log(`closed t=${now()}`);
    receivers.delete(session);
    for (const receipt of pendingReceipts.values()) {
      if (receipt.inFlight === session) receipt.inFlight = null;
    }
    for (const other of receivers) {
      resendReceipts(other);
      break;
    }
  });
  session.on('error', (e) => console.log('session error', e.message));
});
server.listen(PORT, '127.0.0.1', () => console.log(`node-smpp SMSC listening on 127.0.0.1:${PORT} mode=${MODE}`));
