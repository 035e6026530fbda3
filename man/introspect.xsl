<?xml version="1.0"?>
<!-- SPDX-License-Identifier: LGPL-2.1-or-later -->
<!--
  Turn one interface of the D-Bus contract (protocol/org.bufbroker.Broker1.xml)
  into a DocBook <programlisting> in the style of `gdbus introspect`, which
  org.bufbroker.Broker1(5) XIncludes. Generated at build time, so the page
  cannot drift from the contract.
  Parameters: interface (the interface name) and node (the object path to
  show it on).
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" encoding="UTF-8" indent="no" omit-xml-declaration="no"/>

  <xsl:param name="interface"/>
  <xsl:param name="node" select="'/'"/>

  <xsl:variable name="nl" select="'&#10;'"/>

  <xsl:template match="/">
    <xsl:if test="not(/node/interface[@name = $interface])">
      <xsl:message terminate="yes">introspect.xsl: no interface '<xsl:value-of select="$interface"/>' in the contract</xsl:message>
    </xsl:if>
    <programlisting>
      <xsl:value-of select="concat('node ', $node, ' {', $nl)"/>
      <xsl:apply-templates select="/node/interface[@name = $interface]"/>
      <xsl:value-of select="concat('  interface org.freedesktop.DBus.Peer { ... };', $nl)"/>
      <xsl:value-of select="concat('  interface org.freedesktop.DBus.Introspectable { ... };', $nl)"/>
      <xsl:value-of select="concat('  interface org.freedesktop.DBus.Properties { ... };', $nl)"/>
      <xsl:value-of select="'};'"/>
    </programlisting>
  </xsl:template>

  <xsl:template match="interface">
    <xsl:value-of select="concat('  interface ', @name, ' {', $nl)"/>
    <xsl:if test="method">
      <xsl:value-of select="concat('    methods:', $nl)"/>
      <xsl:apply-templates select="method"/>
    </xsl:if>
    <xsl:if test="signal">
      <xsl:value-of select="concat('    signals:', $nl)"/>
      <xsl:apply-templates select="signal"/>
    </xsl:if>
    <xsl:if test="property">
      <xsl:value-of select="concat('    properties:', $nl)"/>
      <xsl:apply-templates select="property"/>
    </xsl:if>
    <xsl:value-of select="concat('  };', $nl)"/>
  </xsl:template>

  <!-- Name(in  s a,
             out t b); -->
  <xsl:template match="method|signal">
    <xsl:variable name="indent" select="string-length(@name) + 7"/>
    <xsl:value-of select="concat('      ', @name, '(')"/>
    <xsl:for-each select="arg">
      <xsl:if test="position() > 1">
        <xsl:value-of select="concat(',', $nl)"/>
        <xsl:call-template name="spaces">
          <xsl:with-param name="n" select="$indent"/>
        </xsl:call-template>
      </xsl:if>
      <xsl:if test="parent::method">
        <xsl:choose>
          <xsl:when test="@direction = 'out'">out </xsl:when>
          <xsl:otherwise>in  </xsl:otherwise>
        </xsl:choose>
      </xsl:if>
      <xsl:value-of select="concat(@type, ' ', @name)"/>
    </xsl:for-each>
    <xsl:value-of select="concat(');', $nl)"/>
  </xsl:template>

  <xsl:template match="property">
    <xsl:for-each select="annotation">
      <xsl:value-of select="concat('      @', @name, '(&quot;', @value, '&quot;)', $nl)"/>
    </xsl:for-each>
    <xsl:variable name="access">
      <xsl:choose>
        <xsl:when test="@access = 'read'">readonly </xsl:when>
        <xsl:when test="@access = 'write'">writeonly </xsl:when>
        <xsl:otherwise>readwrite </xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <xsl:value-of select="concat('      ', $access, @type, ' ', @name, ' = ...;', $nl)"/>
  </xsl:template>

  <xsl:template name="spaces">
    <xsl:param name="n"/>
    <xsl:if test="$n > 0">
      <xsl:text> </xsl:text>
      <xsl:call-template name="spaces">
        <xsl:with-param name="n" select="$n - 1"/>
      </xsl:call-template>
    </xsl:if>
  </xsl:template>
</xsl:stylesheet>
