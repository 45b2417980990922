// RabbitMQ: one connection with one confirm channel, kept alive by a supervisor
// loop that reconnects with backoff, declares the topology again and resumes
// consuming. Every publish (events, dead letters) waits for the broker's confirm.
//
// Topology, shared with the API (declared identically by both, so any extra
// argument here would make the declarations clash):
//   EXPORT_QUEUE          durable queue, no arguments: the jobs
//   EXPORT_QUEUE.dead     durable queue, no arguments: messages we cannot process
//   EVENTS_EXCHANGE       durable topic exchange: `export.<status>` job events

import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";

import amqp from "amqplib";

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 15_000;
const CONFIRM_TIMEOUT_MS = 10_000;

/**
 * @typedef {object} BrokerOptions
 * @property {string} url
 * @property {string} serviceName Shown as the connection name in RabbitMQ.
 * @property {string} queue
 * @property {string} deadLetterQueue
 * @property {string} exchange
 * @property {number} prefetch Unacknowledged messages (= concurrent jobs) at most.
 * @property {import("./log.js").Logger} log
 */

/** Publishing is impossible right now (no connection) or was not confirmed. */
export class BrokerUnavailable extends Error {
  /** @override */
  name = "BrokerUnavailable";
}

/**
 * One received message, tied to the channel it came on: acks only mean something
 * on that channel, so after a reconnect an old delivery can no longer be settled
 * (the broker has already put it back in the queue).
 */
export class Delivery {
  #broker;
  #channel;
  #message;

  /**
   * @param {Broker} broker
   * @param {amqp.ConfirmChannel} channel
   * @param {amqp.ConsumeMessage} message
   */
  constructor(broker, channel, message) {
    this.#broker = broker;
    this.#channel = channel;
    this.#message = message;
  }

  get content() {
    return this.#message.content;
  }

  get properties() {
    return this.#message.properties;
  }

  get redelivered() {
    return this.#message.fields.redelivered;
  }

  /** Whether this delivery can still be acked, nacked or dead-lettered. */
  get settleable() {
    return this.#broker.isCurrentChannel(this.#channel);
  }

  /** @returns {boolean} false if the channel is gone (the broker redelivers). */
  ack() {
    return this.#settle((channel, message) => channel.ack(message));
  }

  /**
   * @param {boolean} [requeue]
   * @returns {boolean} false if the channel is gone (the broker redelivers anyway).
   */
  nack(requeue = true) {
    return this.#settle((channel, message) => channel.nack(message, false, requeue));
  }

  /**
   * Copy the message to the dead-letter queue with the reason in its headers, wait
   * for the broker's confirm, then ack the original: it is never lost in between.
   * @param {string} reason
   * @param {number} attempts
   * @returns {Promise<boolean>} false if the channel is gone (nothing was done).
   */
  async deadLetter(reason, attempts) {
    if (!this.settleable) return false;
    const { properties } = this.#message;
    const headers = {
      ...properties.headers,
      "x-death-reason": reason,
      "x-attempts": attempts,
      "x-original-queue": this.#broker.queue,
      "x-failed-at": new Date().toISOString(),
    };
    const channel = this.#channel;
    await confirmed((done) =>
      channel.sendToQueue(
        this.#broker.deadLetterQueue,
        this.#message.content,
        {
          persistent: true,
          headers,
          messageId: properties.messageId,
          contentType: properties.contentType,
          correlationId: properties.correlationId,
        },
        done,
      ),
    );
    return this.ack();
  }

  /** @param {(channel: amqp.ConfirmChannel, message: amqp.ConsumeMessage) => void} settle */
  #settle(settle) {
    if (!this.settleable) return false;
    try {
      settle(this.#channel, this.#message);
      return true;
    } catch {
      return false; // closed in the meantime: same as above
    }
  }
}

export class Broker extends EventEmitter {
  /** Called for every message; must not throw (it owns the message from now on). */
  onDelivery = /** @type {(delivery: Delivery) => void} */ (() => {});

  #options;
  #log;
  /** @type {amqp.ChannelModel | null} */
  #connection = null;
  /** @type {amqp.ConfirmChannel | null} */
  #channel = null;
  /** @type {string | null} */
  #consumerTag = null;
  #stopping = false;
  #abort = new AbortController();
  /** @type {Promise<void> | null} */
  #supervisor = null;

  /** @param {BrokerOptions} options */
  constructor(options) {
    super();
    this.#options = options;
    this.#log = options.log;
  }

  get queue() {
    return this.#options.queue;
  }

  get deadLetterQueue() {
    return this.#options.deadLetterQueue;
  }

  /** The live connection, if any (for diagnostics and tests). */
  get connection() {
    return this.#connection;
  }

  /** Connected, with an open channel: what /health reports. */
  get healthy() {
    return this.#channel !== null;
  }

  /** @param {amqp.ConfirmChannel} channel */
  isCurrentChannel(channel) {
    return channel === this.#channel;
  }

  /** Connect (and reconnect whenever the connection is lost) in the background. */
  start() {
    this.#supervisor ??= this.#supervise();
  }

  /**
   * Stop taking messages: cancel the consumer, keep the channel for the acks and
   * events of the jobs in hand, and do not reconnect any more.
   */
  async stopConsuming() {
    this.#stopping = true;
    this.#abort.abort();
    const channel = this.#channel;
    const tag = this.#consumerTag;
    this.#consumerTag = null;
    if (channel && tag) {
      await channel.cancel(tag).catch(() => {});
      this.#log.info("consumer cancelled", { queue: this.queue });
    }
  }

  /** Close the channel, then the connection (after stopConsuming and the jobs in hand). */
  async close() {
    await this.stopConsuming();
    // Channel first: its close-ok proves the broker has processed our acks. Closing
    // only the connection may drop acks still queued in the channel's buffer.
    await this.#channel?.close().catch(() => {});
    await this.#connection?.close().catch(() => {});
    await this.#supervisor;
  }

  /**
   * Publish a job event and wait for the broker's confirm.
   * @param {string} routingKey
   * @param {unknown} body JSON-serialisable
   */
  async publishEvent(routingKey, body) {
    const channel = this.#channel;
    if (!channel) throw new BrokerUnavailable("not connected to the broker");
    const content = Buffer.from(JSON.stringify(body));
    await confirmed((done) =>
      channel.publish(
        this.#options.exchange,
        routingKey,
        content,
        {
          persistent: true,
          contentType: "application/json",
          appId: this.#options.serviceName,
          timestamp: Math.floor(Date.now() / 1000),
        },
        done,
      ),
    );
  }

  async #supervise() {
    let delayMs = RECONNECT_MIN_MS;
    while (!this.#stopping) {
      let lost;
      try {
        lost = await this.#connect();
      } catch (error) {
        if (this.#stopping) break;
        this.#log.warning("cannot reach the broker, retrying", { error, retry_in_ms: delayMs });
        await this.#pause(delayMs);
        delayMs = Math.min(delayMs * 2, RECONNECT_MAX_MS);
        continue;
      }
      if (lost === null) break; // asked to stop while connecting
      delayMs = RECONNECT_MIN_MS;
      await lost;
      if (this.#stopping) break;
      // A broker that just dropped us is often restarting: give it a moment.
      await this.#pause(RECONNECT_MIN_MS);
    }
  }

  /**
   * Open a connection and a channel, declare the topology and start consuming.
   * @returns {Promise<Promise<void> | null>} Resolves when this connection is lost;
   *   null if stopping.
   */
  async #connect() {
    const { url, serviceName, prefetch, queue } = this.#options;
    const connection = await amqp.connect(url, {
      timeout: 10_000,
      clientProperties: { connection_name: serviceName },
    });
    /** @type {() => void} */
    let markLost = () => {};
    const lost = new Promise((resolve) => {
      markLost = () => resolve(undefined);
    });
    connection.on("error", (error) => this.#log.warning("broker connection error", { error }));
    connection.on("close", () => {
      this.#forget(connection);
      markLost();
    });
    try {
      const channel = await connection.createConfirmChannel();
      channel.on("error", (error) => this.#log.warning("broker channel error", { error }));
      // A channel closed by the broker (e.g. a precondition failure) leaves the
      // connection open: close that too, and let the supervisor start over.
      channel.on("close", () => {
        this.#forget(connection);
        connection.close().catch(() => {});
      });
      await channel.prefetch(prefetch);
      await this.#declare(channel);
      if (this.#stopping) {
        await connection.close();
        return null;
      }
      this.#connection = connection;
      this.#channel = channel;
      const { consumerTag } = await channel.consume(queue, (m) => this.#receive(channel, m), {
        noAck: false,
      });
      this.#consumerTag = consumerTag;
    } catch (error) {
      await connection.close().catch(() => {});
      throw error;
    }
    this.#log.info("consuming", { queue, prefetch, exchange: this.#options.exchange });
    this.emit("connected");
    return lost;
  }

  /** @param {amqp.ConfirmChannel} channel */
  async #declare(channel) {
    const { queue, deadLetterQueue, exchange } = this.#options;
    await channel.assertQueue(queue, { durable: true });
    await channel.assertQueue(deadLetterQueue, { durable: true });
    await channel.assertExchange(exchange, "topic", { durable: true });
  }

  /**
   * @param {amqp.ConfirmChannel} channel
   * @param {amqp.ConsumeMessage | null} message
   */
  #receive(channel, message) {
    if (message === null) {
      // The broker cancelled our consumer (the queue was deleted): start over,
      // which declares the queue again.
      this.#log.warning("consumer cancelled by the broker, reconnecting", { queue: this.queue });
      this.#connection?.close().catch(() => {});
      return;
    }
    const delivery = new Delivery(this, channel, message);
    if (this.#stopping) {
      // Arrived while shutting down: leave it to another worker (or our successor).
      delivery.nack(true);
      return;
    }
    this.onDelivery(delivery);
  }

  /** @param {amqp.ChannelModel} connection */
  #forget(connection) {
    if (connection !== this.#connection) return;
    this.#connection = null;
    this.#channel = null;
    this.#consumerTag = null;
    if (!this.#stopping) this.#log.warning("lost the broker connection, reconnecting");
    this.emit("disconnected");
  }

  /** @param {number} ms */
  async #pause(ms) {
    await sleep(ms, undefined, { signal: this.#abort.signal }).catch(() => {});
  }
}

/**
 * Turn amqplib's confirm callback into a promise, with a deadline: a broker that
 * neither confirms nor drops the connection must not hang a job forever.
 * @param {(done: (error: unknown) => void) => void} send
 * @returns {Promise<void>}
 */
function confirmed(send) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new BrokerUnavailable("the broker did not confirm the message in time")),
      CONFIRM_TIMEOUT_MS,
    );
    /** @param {unknown} error */
    const done = (error) => {
      clearTimeout(timer);
      if (error) reject(new BrokerUnavailable(`the broker refused the message: ${String(error)}`));
      else resolve();
    };
    try {
      send(done);
    } catch (error) {
      done(error); // e.g. the channel closed just now
    }
  });
}
